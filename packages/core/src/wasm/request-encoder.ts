import { JwtState, type PolicyTables, REQUEST, REQUEST_END, REQUEST_VAR_OFFSET } from './abi.js';
import { ApiKeyHashes } from './api-key-hashes.js';
import { InternRegion, MAX_INTERNED } from './intern-region.js';
import { RecentAddresses } from './recent-addresses.js';
import { clampBodySize, type JwtClaims, type PolicyRequest } from './request.js';

/** The request's attributes do not fit the 64 KiB request area. */
export class RequestTooLarge extends Error {}
/** The request did not fit below the intern region: it is encoded again without interning. */
class NeedRoom extends Error {}

const encoder = new TextEncoder();
const EMPTY_LIST: readonly string[] = Object.freeze([]);
/** Entries per slot of the seen-twice cache (a power of two: indexed by length). */
const SEEN_BUCKETS = 16;

/**
 * A header's value. What Object.prototype provides (a header named "constructor") is a
 * function, never a string, so it reads as absent; any other non-string value is a caller bug
 * and fails the decision closed. (Object.hasOwn would cost a fifth of the encoding time.)
 */
function ownHeader(headers: Readonly<Record<string, string>>, name: string): string | undefined {
  const v: unknown = headers[name];
  if (v === undefined || typeof v === 'string') return v;
  if (typeof v === 'function') return undefined;
  throw new TypeError(`header ${name} is not a string`);
}

/**
 * Writes a PolicyRequest into the request area of the module's memory (docs/abi.md): every
 * string straight from the JavaScript string into memory (ASCII by a character loop, the rest
 * by TextEncoder#encodeInto), the address parsed into its slot, the key's digest into its
 * slot; no intermediate objects. Work already in memory is reused when the value is the same
 * as before (compared by value, so a caller that mutates and reuses its request objects still
 * gets every change encoded): recurring short strings from the intern region, and the
 * address and key digest of the previous request.
 */
export class RequestEncoder {
  readonly apiKeys: ApiKeyHashes;
  private readonly addresses: RecentAddresses;
  private readonly interned: InternRegion;
  /** Next free byte of per-request data, and the first byte it may not reach. */
  private cursor = REQUEST_VAR_OFFSET;
  private limit = REQUEST_END;
  private interning = true;
  /**
   * By slot (address >> 2): the interned string the slot's (ptr, len) points at, so that a
   * value the previous request also had costs one comparison and no store.
   */
  private readonly slotInterned: (string | undefined)[] = new Array(REQUEST_VAR_OFFSET >> 2).fill(undefined);
  /**
   * Cache: per-request values seen twice. By (slot, length mod SEEN_BUCKETS): the last string
   * of at most MAX_INTERNED characters written to that slot with such a length, and where the
   * intern region holds it (or -1). (The interned attributes use their slots' entries too, to
   * skip the region's map.) A per-request value met again in its entry is interned then, and from
   * then on costs one comparison and two stores instead of a copy (a few clients or paths
   * that recur among the rest); a value that never comes back costs one comparison and is
   * never interned, so distinct traffic does not churn the intern region. Bound:
   * SEEN_BUCKETS entries per slot (REQUEST_VAR_OFFSET / 4 slots), strings of at most
   * MAX_INTERNED characters. Why it is safe in the trusted core: an entry is used only for
   * the identical string, and its position only while the intern region holds it
   * (dropInterned empties the positions).
   */
  private readonly seenText: (string | undefined)[] = new Array((REQUEST_VAR_OFFSET >> 2) * SEEN_BUCKETS).fill(undefined);
  private readonly seenPacked = new Int32Array((REQUEST_VAR_OFFSET >> 2) * SEEN_BUCKETS).fill(-1);
  /** The JwtState whose cleared claims the JWT slots hold, or -1 (claims written, or unknown). */
  private jwtCleared = -1;

  constructor(
    private readonly u8: Uint8Array,
    private readonly u32: Uint32Array,
    private readonly tables: PolicyTables,
  ) {
    this.apiKeys = new ApiKeyHashes(u8, u32, tables.apiKeys.length);
    this.interned = new InternRegion(u8, u32);
    this.addresses = new RecentAddresses(u8, u32);
  }

  /** Writes the request area; throws RequestTooLarge, or TypeError for attributes of the wrong type. */
  encode(req: PolicyRequest): void {
    if (this.interned.full) this.dropInterned();
    try {
      this.encodeAll(req);
    } catch (err) {
      if (!(err instanceof NeedRoom)) throw err;
      this.dropInterned();
      this.interning = false;
      try {
        this.encodeAll(req);
      } finally {
        this.interning = true;
      }
    }
  }

  /** The request area is half-written (an encoding failed): nothing in it may be reused. */
  forget(): void {
    this.slotInterned.fill(undefined);
    this.jwtCleared = -1;
    this.addresses.forget();
    this.apiKeys.forget();
  }

  private dropInterned(): void {
    this.interned.clear();
    this.slotInterned.fill(undefined);
    this.seenPacked.fill(-1);
  }

  private encodeAll(req: PolicyRequest): void {
    const u32 = this.u32;
    const t = this.tables;
    this.cursor = REQUEST_VAR_OFFSET;
    this.limit = this.interning ? this.interned.low : REQUEST_END;
    this.field(REQUEST.method, req.method, false);
    this.field(REQUEST.host, req.host, true);
    this.perRequest(REQUEST.path, req.path);
    const ipText = req.ip ?? '';
    this.perRequest(REQUEST.ip, ipText);
    this.addresses.write(ipText);
    u32[REQUEST.bodySize >> 2] = clampBodySize(req.bodySize);
    const headers = req.headers;
    const apiKey = t.apiKeyHeader !== null && headers ? ownHeader(headers, t.apiKeyHeader) : undefined;
    if (apiKey === undefined) u32[REQUEST.apiKeyPresent >> 2] = 0;
    else {
      u32[REQUEST.apiKeyPresent >> 2] = 1;
      this.apiKeys.write(apiKey);
    }
    this.encodeJwt(req);
    const slots = t.headerSlots;
    for (let i = 0; i < slots.length; i++) {
      const v = headers ? ownHeader(headers, slots[i] as string) : undefined;
      const at = REQUEST.headerSlots + 8 * i;
      if (v === undefined) {
        u32[at >> 2] = 0;
      } else this.perRequest(at, v);
    }
  }

  /**
   * The claims a policy sees, encoded straight from the claims object with the normalization
   * of normalizeClaims (request.ts), which the reference evaluator uses: no intermediate arrays.
   */
  private encodeJwt(req: PolicyRequest): void {
    const u32 = this.u32;
    const jwt = this.tables.jwt !== null ? req.jwt : undefined;
    if (jwt === undefined || !jwt.verified) {
      const state = jwt === undefined ? JwtState.ABSENT : JwtState.REJECTED;
      // Most requests of a row carry no token: the cleared claims are then already there.
      if (this.jwtCleared === state) return;
      u32[REQUEST.jwtState >> 2] = state;
      u32[REQUEST.jwtIss >> 2] = 0;
      u32[REQUEST.jwtSub >> 2] = 0;
      u32[REQUEST.jwtTenant >> 2] = 0;
      u32[REQUEST.jwtPlan >> 2] = 0;
      u32[REQUEST.jwtAud >> 2] = 0;
      u32[REQUEST.jwtScopes >> 2] = 0;
      u32[REQUEST.jwtRoles >> 2] = 0;
      const si = this.slotInterned;
      si[REQUEST.jwtIss >> 2] = si[REQUEST.jwtTenant >> 2] = si[REQUEST.jwtPlan >> 2] = undefined;
      this.jwtCleared = state;
      return;
    }
    this.jwtCleared = -1;
    const c: JwtClaims = jwt.claims;
    u32[REQUEST.jwtState >> 2] = JwtState.VERIFIED;
    this.field(REQUEST.jwtIss, c.iss ?? '', false);
    this.perRequest(REQUEST.jwtSub, c.sub ?? '');
    this.field(REQUEST.jwtTenant, c.tenant ?? '', false);
    this.field(REQUEST.jwtPlan, c.plan ?? '', false);
    const aud = c.aud;
    if (typeof aud === 'string') {
      if (!this.internedList(REQUEST.jwtAud, aud, false)) this.single(REQUEST.jwtAud, aud);
    } else this.list(REQUEST.jwtAud, aud ?? EMPTY_LIST);
    const scope = c.scope;
    if (typeof scope === 'string') {
      if (!this.internedList(REQUEST.jwtScopes, scope, true)) this.spaceList(REQUEST.jwtScopes, scope);
    } else this.list(REQUEST.jwtScopes, c.scp ?? EMPTY_LIST);
    this.list(REQUEST.jwtRoles, c.roles ?? EMPTY_LIST);
  }

  /** A string attribute whose values recur (method, host, claims): from the intern region when it can. */
  private field(at: number, s: string, lower: boolean): void {
    const slot = at >> 2;
    const si = this.slotInterned;
    // (undefined marks "not interned": an undefined attribute must go on to fail in str.)
    if (s === si[slot] && s !== undefined) return;
    si[slot] = undefined;
    // The slot's recent values by length (seenText) before the region's map: a value that
    // alternates with a few others (GET, POST) costs a comparison instead of a lookup.
    const e = typeof s === 'string' ? slot * SEEN_BUCKETS + (s.length & (SEEN_BUCKETS - 1)) : -1;
    let packed = e >= 0 && s === this.seenText[e] ? (this.seenPacked[e] as number) : -1;
    if (packed < 0) {
      const region = this.interned;
      packed = region.find(s, lower);
      if (packed < 0 && this.interning && e >= 0) {
        packed = region.add(s, lower, this.cursor);
        if (packed >= 0) this.limit = region.low;
      }
      if (packed < 0) {
        this.str(at, s, lower);
        return;
      }
      this.seenText[e] = s;
      this.seenPacked[e] = packed;
    }
    const u32 = this.u32;
    u32[slot] = packed & 0xffff;
    u32[slot + 1] = packed >>> 16;
    si[slot] = s;
  }

  /**
   * A string attribute that is new on most requests (path, address, subject, header values):
   * from the intern region when it was seen before (seenText), else written at the cursor.
   */
  private perRequest(at: number, s: string): void {
    if (typeof s !== 'string') throw new TypeError(`expected a string, got ${typeof s}`);
    const slot = at >> 2;
    const n = s.length;
    const u32 = this.u32;
    if (n <= MAX_INTERNED) {
      const e = slot * SEEN_BUCKETS + (n & (SEEN_BUCKETS - 1));
      if (s !== this.seenText[e]) {
        this.seenText[e] = s;
        this.seenPacked[e] = -1;
      } else {
        let packed = this.seenPacked[e] as number;
        if (packed < 0 && this.interning) {
          packed = this.interned.add(s, false, this.cursor);
          if (packed >= 0) {
            this.limit = this.interned.low;
            this.seenPacked[e] = packed;
          }
        }
        if (packed >= 0) {
          u32[slot] = packed & 0xffff;
          u32[slot + 1] = packed >>> 16;
          return;
        }
      }
    }
    const p = this.cursor;
    // ASCII as it is, with no lowercasing to consider; the rest takes the general path.
    if (p + n <= this.limit) {
      const u8 = this.u8;
      let i = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c > 0x7f) break;
        u8[p + i] = c;
      }
      if (i === n) {
        u32[slot] = p;
        u32[slot + 1] = n;
        this.cursor = (p + n + 3) & ~3;
        return;
      }
    }
    this.str(at, s, false);
  }

  /** A claim string as a list (`scope` split on spaces, or a one-element `aud`), interned when it can. */
  private internedList(at: number, s: string, split: boolean): boolean {
    const region = this.interned;
    let q = region.findList(s, split);
    if (q < 0 && this.interning) {
      q = region.addList(s, split, this.cursor);
      if (q > 0) this.limit = region.low;
    }
    if (q < 0) return false;
    this.u32[at >> 2] = q;
    return true;
  }

  /** Per-request data reached the limit: too large, or too large next to the intern region. */
  private overflow(): never {
    throw this.limit < REQUEST_END ? new NeedRoom() : new RequestTooLarge();
  }

  /** Writes a (ptr, len) pair at `at` and the UTF-8 bytes at the cursor. ASCII takes a fast path. */
  private str(at: number, s: string, lower = false): void {
    if (typeof s !== 'string') throw new TypeError(`expected a string, got ${typeof s}`);
    const u8 = this.u8;
    let p = this.cursor;
    const n = s.length;
    if (p + n > this.limit) this.overflow();
    let ascii = true;
    for (let i = 0; i < n; i++) {
      let c = s.charCodeAt(i);
      if (c > 0x7f) {
        ascii = false;
        break;
      }
      // ASCII lowercasing in the copy saves a String#toLowerCase per request.
      if (lower && c >= 0x41 && c <= 0x5a) c += 0x20;
      u8[p + i] = c;
    }
    let len = n;
    if (!ascii) {
      const text = lower ? s.toLowerCase() : s;
      const r = encoder.encodeInto(text, u8.subarray(p, this.limit));
      if (r.read !== text.length) this.overflow();
      len = r.written;
    }
    this.u32[at >> 2] = p;
    this.u32[(at >> 2) + 1] = len;
    p += len;
    this.cursor = (p + 3) & ~3;
  }

  /** A one-element list (a string `aud`). */
  private single(at: number, item: string): void {
    const base = this.cursor;
    if (base + 12 > this.limit) this.overflow();
    this.cursor = base + 12;
    this.u32[base >> 2] = 1;
    this.str(base + 4, item);
    this.u32[at >> 2] = base;
  }

  /** The non-empty space-separated parts of an OAuth `scope` claim, as a list. */
  private spaceList(at: number, s: string): void {
    let count = 0;
    for (let i = 0; i < s.length; i++) {
      if (s.charCodeAt(i) !== 0x20 && (i === 0 || s.charCodeAt(i - 1) === 0x20)) count++;
    }
    if (count === 0) {
      this.u32[at >> 2] = 0;
      return;
    }
    const base = this.cursor;
    const bytes = 4 + 8 * count;
    if (base + bytes > this.limit) this.overflow();
    this.cursor = base + bytes;
    this.u32[base >> 2] = count;
    let n = 0;
    let from = -1;
    for (let i = 0; i <= s.length; i++) {
      const space = i === s.length || s.charCodeAt(i) === 0x20;
      if (!space && from < 0) from = i;
      else if (space && from >= 0) {
        this.str(base + 4 + 8 * n++, s.slice(from, i));
        from = -1;
      }
    }
    this.u32[at >> 2] = base;
  }

  private list(at: number, items: readonly string[]): void {
    if (items.length === 0) {
      this.u32[at >> 2] = 0;
      return;
    }
    const base = this.cursor;
    const bytes = 4 + 8 * items.length;
    if (base + bytes > this.limit) this.overflow();
    this.cursor = base + bytes;
    this.u32[base >> 2] = items.length;
    for (let i = 0; i < items.length; i++) this.str(base + 4 + 8 * i, items[i] as string);
    this.u32[at >> 2] = base;
  }
}
