import { DATA_OFFSET } from '@apx/core';

/**
 * The module's static data (strings, lists, key hashes, CIDRs) as one byte image placed at
 * DATA_OFFSET. Appends happen in policy order, so the image, and the module, is deterministic.
 */
export class DataImage {
  private readonly bytes: number[] = [];
  private readonly strings = new Map<string, number>();
  private readonly encoder = new TextEncoder();

  get size(): number {
    return this.bytes.length;
  }

  private align(): void {
    while (this.bytes.length % 4 !== 0) this.bytes.push(0);
  }

  /** Absolute address of raw bytes. */
  raw(data: Uint8Array | readonly number[]): number {
    this.align();
    const at = DATA_OFFSET + this.bytes.length;
    for (const b of data) this.bytes.push(b);
    return at;
  }

  /** (ptr, len) of a UTF-8 string, stored once. */
  string(s: string): { ptr: number; len: number } {
    const utf8 = this.encoder.encode(s);
    let ptr = this.strings.get(s);
    if (ptr === undefined) {
      ptr = DATA_OFFSET + this.bytes.length;
      for (const b of utf8) this.bytes.push(b);
      this.strings.set(s, ptr);
    }
    return { ptr, len: utf8.length };
  }

  /** Address of a string list in the ABI's list layout; 0 for an empty list. */
  list(items: readonly string[]): number {
    if (items.length === 0) return 0;
    const refs = items.map((s) => this.string(s));
    const words = [items.length, ...refs.flatMap((r) => [r.ptr, r.len])];
    return this.words(words);
  }

  /** Address of little-endian u32 words. */
  words(words: readonly number[]): number {
    const out: number[] = [];
    for (const w of words) out.push(w & 0xff, (w >>> 8) & 0xff, (w >>> 16) & 0xff, (w >>> 24) & 0xff);
    return this.raw(out);
  }

  /** The data image as a WAT string literal. */
  watLiteral(): string {
    let s = '';
    for (const b of this.bytes) s += `\\${b.toString(16).padStart(2, '0')}`;
    return s;
  }
}
