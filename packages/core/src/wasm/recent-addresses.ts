import { REQUEST } from './abi.js';
import { parseIpInto } from './ip.js';

/** Distinct address texts whose parses are kept. */
export const RECENT_ADDRESSES = 4;

/**
 * Writes the family and 16 bytes of the request's client address into the request area.
 *
 * Cache: the RECENT_ADDRESSES most recent distinct address texts and their parses (family +
 * 4 words, in a buffer allocated at load), so that a few busy clients interleaved with each
 * other and with the rest are not parsed again on every return. Bound: RECENT_ADDRESSES
 * entries; a new address replaces the oldest. Parsing is cheap (allocation-free, ip.ts); the
 * cache only saves it, and a miss costs RECENT_ADDRESSES string comparisons (of texts that
 * mostly differ in length or first characters). Why it is safe in the trusted core: an entry
 * is the parse of exactly its text, written by parseIpInto, and is used only for the
 * identical text.
 */
export class RecentAddresses {
  private readonly texts: (string | undefined)[] = new Array(RECENT_ADDRESSES).fill(undefined);
  /** Per entry: the family, then the address's 4 words as stored in the request area. */
  private readonly parses = new Uint32Array(5 * RECENT_ADDRESSES);
  /** The entry the request area holds, or -1. */
  private inMemory = -1;
  /** The entry the next new address replaces (entries are filled in turn). */
  private next = 0;

  constructor(
    private readonly u8: Uint8Array,
    private readonly u32: Uint32Array,
  ) {}

  write(text: string): void {
    const texts = this.texts;
    if (this.inMemory >= 0 && text === texts[this.inMemory]) return;
    const u32 = this.u32;
    const family = REQUEST.ipFamily >> 2;
    const at = REQUEST.ipBytes >> 2;
    const parses = this.parses;
    for (let e = 0; e < RECENT_ADDRESSES; e++) {
      if (text !== texts[e]) continue;
      const from = 5 * e;
      u32[family] = parses[from] as number;
      u32[at] = parses[from + 1] as number;
      u32[at + 1] = parses[from + 2] as number;
      u32[at + 2] = parses[from + 3] as number;
      u32[at + 3] = parses[from + 4] as number;
      this.inMemory = e;
      return;
    }
    u32[family] = parseIpInto(text, this.u8, REQUEST.ipBytes);
    const e = this.next;
    this.next = e + 1 === RECENT_ADDRESSES ? 0 : e + 1;
    texts[e] = text;
    const to = 5 * e;
    parses[to] = u32[family] as number;
    parses[to + 1] = u32[at] as number;
    parses[to + 2] = u32[at + 1] as number;
    parses[to + 3] = u32[at + 2] as number;
    parses[to + 4] = u32[at + 3] as number;
    this.inMemory = e;
  }

  /** The request area no longer holds what this class wrote. */
  forget(): void {
    this.inMemory = -1;
  }
}
