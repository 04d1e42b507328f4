import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseIp } from './ip.js';

const hex = (b: Uint8Array | undefined) => (b ? Buffer.from(b).toString('hex') : undefined);

describe('parseIp', () => {
  it('parses IPv4 into the first four bytes', () => {
    const ip = parseIp('192.0.2.1');
    assert.equal(ip?.family, 4);
    assert.equal(hex(ip?.bytes), `c0000201${'0'.repeat(24)}`);
  });

  it('parses IPv6 with and without compression', () => {
    assert.equal(hex(parseIp('2001:db8::1')?.bytes), '20010db8000000000000000000000001');
    assert.equal(hex(parseIp('2001:db8:0:0:0:0:0:1')?.bytes), '20010db8000000000000000000000001');
    assert.equal(hex(parseIp('::')?.bytes), '0'.repeat(32));
    assert.equal(hex(parseIp('1::')?.bytes), `0001${'0'.repeat(28)}`);
    assert.equal(parseIp('::1')?.family, 6);
  });

  it('reports IPv4-mapped IPv6 as IPv4', () => {
    assert.deepEqual(parseIp('::ffff:10.1.2.3'), parseIp('10.1.2.3'));
    assert.deepEqual(parseIp('::ffff:0a01:0203'), parseIp('10.1.2.3'));
  });

  it('refuses what is not an address', () => {
    for (const bad of [
      '',
      'x',
      '1.2.3',
      '1.2.3.4.5',
      '256.0.0.1',
      '01.2.3.4',
      '1:2:3:4:5:6:7:8:9',
      '1::2::3',
      'fe80::1%eth0',
      '12345::',
      ':1:2',
    ]) {
      assert.equal(parseIp(bad), undefined, bad);
    }
  });
});
