import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { REQUEST } from './abi.js';
import { ApiKeyHashes } from './api-key-hashes.js';

function area() {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 1 });
  const u8 = new Uint8Array(memory.buffer);
  const digest = () => Buffer.from(u8.subarray(REQUEST.apiKeySha256, REQUEST.apiKeySha256 + 32)).toString('hex');
  return { u8, u32: new Uint32Array(memory.buffer), digest };
}
const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');

describe('ApiKeyHashes', () => {
  it('writes the SHA-256 of every key, known or not, kept or not', () => {
    const { u8, u32, digest } = area();
    const keys = new ApiKeyHashes(u8, u32, 2);
    keys.write('partner-a');
    keys.accepted(0);
    keys.write('partner-b');
    keys.accepted(1);
    // Guesses interleaved with the partners and with repeats.
    for (let i = 0; i < 600; i++) {
      for (const k of [`guess-${i}`, 'partner-a', `guess-${i >> 1}`, 'partner-b', 'ключ-🔑', 'x'.repeat(600)]) {
        keys.write(k);
        assert.equal(digest(), sha256(k), k);
      }
    }
  });

  it('moves a slot to another text only by replacing it, never by sharing it', () => {
    const { u8, u32, digest } = area();
    const keys = new ApiKeyHashes(u8, u32, 1);
    keys.write('first');
    keys.accepted(0);
    // A second text named entry 0 (only a digest collision could do it) takes the slot.
    keys.write('second');
    keys.accepted(0);
    keys.write('first');
    assert.equal(digest(), sha256('first'));
    keys.write('second');
    assert.equal(digest(), sha256('second'));
  });

  it('writes again after the area was forgotten', () => {
    const { u8, u32, digest } = area();
    const keys = new ApiKeyHashes(u8, u32, 0);
    keys.write('k');
    u8.fill(0, REQUEST.apiKeySha256, REQUEST.apiKeySha256 + 32);
    keys.forget();
    keys.write('k');
    assert.equal(digest(), sha256('k'));
  });
});
