import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeFirstPem, encodePem } from './pem.js';

describe('PEM', () => {
  it('writes 64-column lines and one final LF, and reads it back', () => {
    const der = Buffer.alloc(100, 7);
    const pem = encodePem('PUBLIC KEY', der);
    const lines = pem.split('\n');
    assert.equal(lines[1]?.length, 64);
    assert.ok(pem.endsWith('-----END PUBLIC KEY-----\n'));
    assert.deepEqual(decodeFirstPem(pem), { label: 'PUBLIC KEY', der });
  });

  it('skips text before the first block and ignores later blocks, as Go pem.Decode', () => {
    const a = encodePem('PUBLIC KEY', Buffer.of(1, 2, 3));
    const b = encodePem('OTHER', Buffer.of(4));
    assert.deepEqual(decodeFirstPem(`comment\n${a}${b}`)?.der, Buffer.of(1, 2, 3));
  });

  it('returns undefined for corrupted base64, a missing END line or no block', () => {
    assert.equal(decodeFirstPem('-----BEGIN PUBLIC KEY-----\nAAA*\n-----END PUBLIC KEY-----\n'), undefined);
    assert.equal(decodeFirstPem('-----BEGIN PUBLIC KEY-----\nAAAA\n'), undefined);
    assert.equal(decodeFirstPem('nothing here'), undefined);
  });
});
