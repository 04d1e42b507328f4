import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { REQUEST } from './abi.js';
import { parseIp } from './ip.js';
import { RecentAddresses } from './recent-addresses.js';

describe('RecentAddresses', () => {
  it('leaves the parse of the current address in the request area, however addresses recur', () => {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 1 });
    const u8 = new Uint8Array(memory.buffer);
    const u32 = new Uint32Array(memory.buffer);
    const recent = new RecentAddresses(u8, u32);
    const texts = ['192.0.2.1', '2001:db8::7', 'not an address', '::ffff:10.0.0.1', '', '203.0.113.9'];
    // Repeats, alternations of two and rotations of three or more, and a forget in between.
    const order = [0, 0, 1, 0, 1, 2, 0, 2, 3, 4, 3, 5, 0, 1, 2, 3, 4, 5, 5, 1];
    for (const [step, i] of order.entries()) {
      if (step === 10) recent.forget();
      const text = texts[i] as string;
      recent.write(text);
      const want = parseIp(text);
      assert.equal(u32[REQUEST.ipFamily >> 2], want?.family ?? 0, text);
      assert.deepEqual([...u8.subarray(REQUEST.ipBytes, REQUEST.ipBytes + 16)], [...(want?.bytes ?? new Uint8Array(16))], text);
    }
  });
});
