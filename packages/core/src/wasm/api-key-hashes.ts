import { hash } from 'node:crypto';
import { REQUEST } from './abi.js';

/**
 * Writes the SHA-256 of a presented API key into the request area (the policy compares
 * hashes; it never sees the key).
 *
 * Cache: the keys the policy accepted, so that a partner's key is hashed once. What it holds:
 * presented key text → the digest's 8 words, in a buffer allocated at load. Bound: one entry
 * per key of the policy's table (tables.apiKeys), since only a key the module identified as
 * table entry k is kept, in slot k; of the other keys only the last one hashed is kept (a
 * client retrying with a revoked key), so a spray of guesses can neither grow memory nor
 * evict a partner's key. Why it is safe in the trusted core: an entry is written only from
 * the digest this class computed for exactly that text, and read back only for the identical
 * text; the module still compares the digest itself, so the cache can save a hash but never
 * make a key match.
 */
export class ApiKeyHashes {
  /** Key text → its slot. */
  private readonly slots = new Map<string, number>();
  /** Slot → the key text it holds (so that a slot is never claimed by two texts). */
  private readonly texts: (string | undefined)[];
  private readonly words: Uint32Array;
  private readonly keyCount: number;
  /** The key whose digest the request area holds, or undefined, and the slot it came from (or -1). */
  private inMemory: string | undefined;
  private inMemorySlot = -1;
  private readonly digestAt = REQUEST.apiKeySha256 >> 2;
  /** The last key hashed and its digest (one entry: a client retrying with a bad key). */
  private lastUnknown: string | undefined;
  private lastUnknownDigest = '';

  constructor(
    private readonly u8: Uint8Array,
    private readonly u32: Uint32Array,
    keyCount: number,
  ) {
    this.keyCount = keyCount;
    this.words = new Uint32Array(8 * Math.max(keyCount, 1));
    this.texts = new Array(keyCount).fill(undefined);
  }

  /** Puts the digest of `key` into the request area. */
  write(key: string): void {
    if (key === this.inMemory) return;
    const slot = this.slots.get(key);
    const u32 = this.u32;
    const at = this.digestAt;
    if (slot !== undefined) {
      const w = this.words;
      const from = slot * 8;
      for (let i = 0; i < 8; i++) u32[at + i] = w[from + i] as number;
      this.inMemorySlot = slot;
    } else {
      this.inMemorySlot = -1;
      // The digest as a one-byte string ('binary': each char code is a byte): about a third of
      // the cost of a Buffer digest, whose backing store is allocated per call.
      let digest = this.lastUnknownDigest;
      if (key !== this.lastUnknown) {
        digest = hash('sha256', key, 'binary');
        this.lastUnknown = key;
        this.lastUnknownDigest = digest;
      }
      const u8 = this.u8;
      for (let i = 0; i < 32; i++) u8[REQUEST.apiKeySha256 + i] = digest.charCodeAt(i);
    }
    this.inMemory = key;
  }

  /** The module identified the key in the request area as table entry `index`. */
  accepted(index: number): void {
    const key = this.inMemory;
    if (key === undefined || index === this.inMemorySlot || index < 0 || index >= this.keyCount) return;
    this.keep(key, index);
    this.inMemorySlot = index;
  }

  /** The request area no longer holds a digest this class wrote (it was cleared or half-written). */
  forget(): void {
    this.inMemory = undefined;
    this.inMemorySlot = -1;
  }

  /** Copies the digest in the request area into `slot`, for `key`, replacing what the slot held. */
  private keep(key: string, slot: number): void {
    const previous = this.texts[slot];
    if (previous !== undefined && this.slots.get(previous) === slot) this.slots.delete(previous);
    this.texts[slot] = key;
    const w = this.words;
    const u32 = this.u32;
    for (let i = 0; i < 8; i++) w[slot * 8 + i] = u32[this.digestAt + i] as number;
    this.slots.set(key, slot);
  }
}
