import { REQUEST } from './abi.js';
import { parseIpInto } from './ip.js';

/**
 * Writes the family and 16 bytes of the request's client address into the request area.
 *
 * Cache: the two most recent distinct address texts and their parses (family + 16 bytes, in
 * a buffer allocated at load), so that a client that comes back after one other request (the
 * usual interleaving of a busy caller with the rest) is not parsed again. Bound: two entries;
 * a new address replaces the older one. Parsing is cheap (allocation-free, ip.ts); the cache
 * only saves it, and a miss costs two string comparisons. Why it is safe in the trusted core:
 * an entry is the parse of exactly its text, written by parseIpInto, and is used only for the
 * identical text.
 */
export class RecentAddresses {
  private readonly texts: [string | undefined, string | undefined] = [undefined, undefined];
  private readonly families = [0, 0];
  private readonly bytes = new Uint8Array(32);
  /** The entry the request area holds (0 or 1), or -1. */
  private inMemory = -1;
  /** The entry the next new address replaces. */
  private older = 0;

  constructor(
    private readonly u8: Uint8Array,
    private readonly u32: Uint32Array,
  ) {}

  write(text: string): void {
    const texts = this.texts;
    if (this.inMemory >= 0 && text === texts[this.inMemory]) return;
    const u8 = this.u8;
    const at = REQUEST.ipBytes;
    const hit = text === texts[0] ? 0 : text === texts[1] ? 1 : -1;
    if (hit >= 0) {
      const b = this.bytes;
      for (let i = 0; i < 16; i++) u8[at + i] = b[16 * hit + i] as number;
      this.u32[REQUEST.ipFamily >> 2] = this.families[hit] as number;
      this.inMemory = hit;
      this.older = 1 - hit;
      return;
    }
    const family = parseIpInto(text, u8, at);
    this.u32[REQUEST.ipFamily >> 2] = family;
    const e = this.older;
    texts[e] = text;
    this.families[e] = family;
    const b = this.bytes;
    for (let i = 0; i < 16; i++) b[16 * e + i] = u8[at + i] as number;
    this.inMemory = e;
    this.older = 1 - e;
  }

  /** The request area no longer holds what this class wrote. */
  forget(): void {
    this.inMemory = -1;
  }
}
