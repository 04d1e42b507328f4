import { REQUEST_END } from './abi.js';

/** Longest string (UTF-16 units) kept in the intern region. */
export const MAX_INTERNED = 64;
/** Most bytes of the request area the intern region may take (it never limits a request). */
export const INTERN_BYTES = 8192;

/**
 * Cache: short strings that recur from request to request (method, host, token issuer,
 * tenant, plan, audience and scope claims) keep their bytes at the top of the request area,
 * [low, REQUEST_END), and are found by value, so a recurring value costs one map lookup and
 * two stores instead of a copy. Bound: INTERN_BYTES of memory (strings of at most
 * MAX_INTERNED ASCII characters, lists built from such strings), hence at most a few thousand
 * map entries; when full, the encoder drops everything and starts over. Why it is safe in the
 * trusted core: entries are keyed by the exact string they hold, and the request's own data
 * is written below `low`, so nothing a request writes overlaps an entry; the module does not
 * write the request area (docs/abi.md), and a module that did could only change the inputs
 * of its own later decisions, which it decides anyway.
 *
 * Values that are new on almost every request (paths, addresses, subjects, header values)
 * are interned only once the encoder has seen them a second time (RequestEncoder's seen-twice
 * cache): the rest are written per request, which costs the same copy without the map
 * insertions and the evictions they would cause.
 */
export class InternRegion {
  /** Lowest byte in use; per-request data must stay below it. */
  low = REQUEST_END;
  /** Set when a string did not fit: the encoder clears the region before the next request. */
  full = false;
  /** Strings as written and ASCII-lowercased (host names), as ptr | len << 16. */
  private readonly exact = new Map<string, number>();
  private readonly lowered = new Map<string, number>();
  /** Lists by claim value: `scope` strings split on spaces, and string `aud`s, as list pointers. */
  private readonly scopeLists = new Map<string, number>();
  private readonly audLists = new Map<string, number>();

  constructor(
    private readonly u8: Uint8Array,
    private readonly u32: Uint32Array,
  ) {}

  clear(): void {
    this.exact.clear();
    this.lowered.clear();
    this.scopeLists.clear();
    this.audLists.clear();
    this.low = REQUEST_END;
    this.full = false;
  }

  /** The interned (ptr | len << 16) of `s`, or -1. */
  find(s: string, lower: boolean): number {
    return (lower ? this.lowered : this.exact).get(s) ?? -1;
  }

  /**
   * Copies `s` (lowercased when `lower`) just below the region, never below `floor` (what
   * the request has written). Returns ptr | len << 16, or -1 when it is not short ASCII or
   * does not fit (then `full` is set).
   */
  add(s: string, lower: boolean, floor: number): number {
    const n = s.length;
    // (An empty string is not interned: its pointer could be the end of memory, 65536.)
    if (n === 0 || n > MAX_INTERNED) return -1;
    const p = (this.low - n) & ~3;
    if (p < floor || p < REQUEST_END - INTERN_BYTES) {
      this.full = true;
      return -1;
    }
    const u8 = this.u8;
    for (let i = 0; i < n; i++) {
      let c = s.charCodeAt(i);
      // Non-ASCII is rare: the caller writes it per request (the bytes written here are unused).
      if (c > 0x7f) return -1;
      if (lower && c >= 0x41 && c <= 0x5a) c += 0x20;
      u8[p + i] = c;
    }
    this.low = p;
    const packed = p | (n << 16);
    (lower ? this.lowered : this.exact).set(s, packed);
    return packed;
  }

  /** The interned list pointer made from claim string `s` (see addList), or -1. */
  findList(s: string, split: boolean): number {
    return (split ? this.scopeLists : this.audLists).get(s) ?? -1;
  }

  /**
   * A list made from one claim string: the string's bytes once, the list's (ptr, len) pairs
   * pointing into them. `split`: the non-empty space-separated parts (`scope`), else a
   * one-element list (`aud`). Returns the list pointer (0 for an empty list), or -1 when it
   * could not be interned (the caller then writes it per request).
   */
  addList(s: string, split: boolean, floor: number): number {
    const n = s.length;
    if (n > MAX_INTERNED) return -1;
    let count = split ? 0 : 1;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c > 0x7f) return -1;
      if (split && c !== 0x20 && (i === 0 || s.charCodeAt(i - 1) === 0x20)) count++;
    }
    if (count === 0) return 0;
    const q = (this.low - (4 + 8 * count + n)) & ~3;
    if (q < floor || q < REQUEST_END - INTERN_BYTES) {
      this.full = true;
      return -1;
    }
    const text = q + 4 + 8 * count;
    const u8 = this.u8;
    const u32 = this.u32;
    for (let i = 0; i < n; i++) u8[text + i] = s.charCodeAt(i);
    u32[q >> 2] = count;
    if (split) {
      let e = (q >> 2) + 1;
      let from = -1;
      for (let i = 0; i <= n; i++) {
        const space = i === n || s.charCodeAt(i) === 0x20;
        if (!space && from < 0) from = i;
        else if (space && from >= 0) {
          u32[e++] = text + from;
          u32[e++] = i - from;
          from = -1;
        }
      }
    } else {
      u32[(q >> 2) + 1] = text;
      u32[(q >> 2) + 2] = n;
    }
    this.low = q;
    (split ? this.scopeLists : this.audLists).set(s, q);
    return q;
  }
}
