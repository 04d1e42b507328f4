import { hash } from 'node:crypto';
import { REQUEST } from './abi.js';

/** Recently presented keys whose digests are kept, whether the policy knew them or not. */
export const RECENT_KEYS = 256;
/** Longest key text kept (longer ones are hashed every time). */
export const MAX_KEPT_KEY = 512;

/**
 * Writes the SHA-256 of a presented API key into the request area (the policy compares
 * hashes; it never sees the key).
 *
 * Cache: presented key text → the digest's 8 words, in one buffer allocated at load, in two
 * parts. (1) The keys the policy accepted, one slot per entry of the policy's key table
 * (tables.apiKeys): a key the module identified as entry k is kept in slot k, so a partner's
 * key is hashed once. (2) A ring of the RECENT_KEYS most recently hashed keys of at most
 * MAX_KEPT_KEY characters, whatever the policy made of them (a client retrying with a
 * revoked key). Bound: key count + RECENT_KEYS digests and as many map entries; a spray of
 * guessed keys only turns the ring over and cannot evict an accepted key. Why it is safe in
 * the trusted core: an entry is written only from the digest this class computed for exactly
 * that text, and read back only for the identical text; the module still compares the digest
 * itself, so the cache can save a hash but never make a key match.
 */
export class ApiKeyHashes {
  /** Key text → its slot. */
  private readonly slots = new Map<string, number>();
  /** Slot → the key text it holds (so that evicting a slot removes the right entry). */
  private readonly texts: (string | undefined)[];
  private readonly words: Uint32Array;
  private readonly keyCount: number;
  /** Next ring slot to (re)use. */
  private ring = 0;
  /** The key whose digest the request area holds, or undefined, and the slot it came from (or -1). */
  private inMemory: string | undefined;
  private inMemorySlot = -1;
  private readonly digestAt = REQUEST.apiKeySha256 >> 2;

  constructor(
    private readonly u8: Uint8Array,
    private readonly u32: Uint32Array,
    keyCount: number,
  ) {
    this.keyCount = keyCount;
    this.words = new Uint32Array(8 * (keyCount + RECENT_KEYS));
    this.texts = new Array(keyCount + RECENT_KEYS).fill(undefined);
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
      const digest = hash('sha256', key, 'binary');
      const u8 = this.u8;
      for (let i = 0; i < 32; i++) u8[REQUEST.apiKeySha256 + i] = digest.charCodeAt(i);
      if (key.length <= MAX_KEPT_KEY) {
        this.keep(key, this.keyCount + this.ring);
        this.ring = this.ring + 1 === RECENT_KEYS ? 0 : this.ring + 1;
      }
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
