import { createHash } from 'node:crypto';
import { assertVerifiedArtifact, type VerifiedArtifact } from '../artifact/verified-artifact.js';
import {
  DECIDE_OK,
  DECISION,
  IdentityKind,
  IMPORT_MEMORY,
  IMPORT_MODULE,
  JwtState,
  METER_MODULE,
  METER_REFUEL,
  type PolicyMeta,
  type PolicyTables,
  type RateLimitDescriptor,
  REQUEST,
  REQUEST_END,
  REQUEST_VAR_OFFSET,
} from './abi.js';
import { abiMismatch } from './abi-check.js';
import { ANONYMOUS, type DecisionIdentity, NO_HEADER_MUTATIONS, type PolicyDecision, type RateLimitCharge } from './decision.js';
import { parseIp } from './ip.js';
import { FUEL_CHUNK } from './meter.js';
import { clampBodySize, type JwtClaims, type PolicyRequest } from './request.js';

export interface PolicyFault {
  /**
   * `trap` (the module trapped), `malformed` (bad decision record), `oversized` (request too
   * big for the request area), `invalid-request` (attributes not of the documented types),
   * `deadline` (the decision ran past its deadline and was stopped; the host is then
   * unhealthy for good: see PolicyHost.healthy).
   */
  kind: 'trap' | 'malformed' | 'oversized' | 'invalid-request' | 'deadline';
  message: string;
  policy: string;
  digest: string;
}

export interface PolicyHostOptions {
  /** Called for every fail-closed decision caused by the module or the request encoding. */
  onFault?: (fault: PolicyFault) => void;
  /** Longest a decision may run, in milliseconds (default DEFAULT_DECISION_DEADLINE_MS). */
  deadlineMs?: number;
}

/** A decision that runs longer than this is stopped (APX_DECISION_DEADLINE_MS overrides it). */
export const DEFAULT_DECISION_DEADLINE_MS = 50;

/** Thrown by the refuel import to unwind a module past its deadline. */
class DeadlineExceeded extends Error {}

/**
 * The key of PolicyHost's unmetered constructor, for benchmarks that measure what metering
 * costs (`@apx/core/testing`); it is not exported from `@apx/core`.
 */
export const UNMETERED_FOR_BENCHMARKS: unique symbol = Symbol('PolicyHost.unmetered');

const CACHE_MAX = 1024;
/** Longest API key whose hash is cached. */
const MAX_CACHED_KEY = 512;
/** Longest address text (IPv4-mapped IPv6 with all groups written out). */
const MAX_IP_TEXT = 45;
const encoder = new TextEncoder();

/** Deny decisions the host itself makes when it cannot trust the module's answer. */
function faultDecision(reason: string, status: number): PolicyDecision {
  return {
    effect: 'deny',
    status,
    reason,
    route: null,
    rule: null,
    identity: ANONYMOUS,
    headers: NO_HEADER_MUTATIONS,
    rateLimits: [],
  };
}

class RequestTooLarge extends Error {}

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

/** Longest string (UTF-16 units) kept in the intern region. */
const MAX_INTERNED = 64;
/** Most bytes of the request area the intern region may take (it never limits a request). */
const INTERN_BYTES = 8192;
/** The request did not fit below the intern region: it is encoded again without interning. */
class NeedRoom extends Error {}
const EMPTY_LIST: readonly string[] = Object.freeze([]);

/** A parsed address as the 4 words the request area holds (same byte order as memory). */
interface CachedIp {
  family: 4 | 6;
  words: Uint32Array;
}
const ZERO_WORDS = new Uint32Array(4);
const NO_CHARGES: readonly RateLimitCharge[] = Object.freeze([]);

/**
 * Runs one verified policy module. Only a VerifiedArtifact can be loaded (its module was
 * compiled from the bytes whose signature verified), the ABI is checked before instantiation,
 * and every failure of the module (trap, malformed record) is a deny with status 500.
 */
export class PolicyHost {
  readonly meta: PolicyMeta;
  readonly tables: PolicyTables;
  readonly digest: string;
  private readonly decideFn: () => number;
  private readonly u8: Uint8Array;
  private readonly u32: Uint32Array;
  private readonly i32: Int32Array;
  private readonly onFault: ((fault: PolicyFault) => void) | undefined;
  private readonly deadlineMs: number;
  /**
   * Metering (meter.ts): decisions are numbered; the first refuel within a decision starts
   * its clock, later ones compare against the deadline. A decision that never exhausts the
   * fuel reads no clock at all.
   */
  private decisionSeq = 0;
  private meteredSeq = -1;
  private meteredSince = 0;
  /** Set once a decision was stopped at its deadline: the module is never entered again. */
  private stopped: PolicyDecision | undefined;
  private readonly keyHashes = new Map<string, Uint32Array>();
  private readonly ips = new Map<string, CachedIp | null>();
  private cursor = REQUEST_VAR_OFFSET;
  /** Precomputed at load so that a decision allocates as little as possible. */
  private readonly keyIdentities: readonly DecisionIdentity[];
  private readonly routeLimits: readonly (readonly RateLimitDescriptor[])[];
  /** Charges of API-key callers depend only on (route, key): computed once, shared, frozen. */
  private readonly keyCharges = new Map<number, readonly RateLimitCharge[]>();
  /** Per route: does one of its limits charge the client address (so an allow varies per request)? */
  private readonly routeIpKeyed: readonly boolean[];
  /** Shared, frozen decisions of static outcomes, by (route, rule, key); see readDecision. */
  private readonly decisions = new Map<number, PolicyDecision>();
  /** The same for the JWT caller of lastJwtIdentity. */
  private readonly jwtDecisions = new Map<number, PolicyDecision>();
  /** Identity of the verified token of the request being decided (undefined without one). */
  private jwtIdentity: DecisionIdentity | undefined;
  /**
   * Intern region: short strings seen before keep their bytes at the top of the request area,
   * [internLow, REQUEST_END), and are found by value (ptr | len << 16); `interned` holds them
   * as written, `internedLower` ASCII-lowercased (host names). Per-request data is written
   * below `limit` (internLow while interning). A request too large for the space left is
   * encoded again with the cache dropped and the whole area, exactly as without interning.
   */
  private readonly interned = new Map<string, number>();
  private readonly internedLower = new Map<string, number>();
  /** Interned lists by claim value: `scope` strings split on spaces, and string `aud`s. */
  private readonly scopeLists = new Map<string, number>();
  private readonly audLists = new Map<string, number>();
  private internLow = REQUEST_END;
  private internFull = false;
  private interning = true;
  private limit = REQUEST_END;
  /**
   * By slot (address >> 2): the interned string the slot's (ptr, len) points at, so that a
   * value the previous request also had costs one comparison and no store.
   */
  private readonly slotInterned: (string | undefined)[] = new Array(REQUEST_VAR_OFFSET >> 2).fill(undefined);
  /** Address text whose parse sits in ipFamily/ipBytes; API key whose hash sits in apiKeySha256. */
  private lastIpText: string | undefined;
  private lastApiKey: string | undefined;
  /** The JwtState whose cleared claims the JWT slots hold, or -1 (claims written, or unknown). */
  private jwtCleared = -1;
  private lastJwtIdentity: DecisionIdentity | undefined;

  private constructor(artifact: VerifiedArtifact, options: PolicyHostOptions, module = artifact.module) {
    // The verifier checked the ABI and froze the tables (decisions hand out parts of them).
    const { meta, tables } = artifact;
    this.meta = meta;
    this.tables = tables;
    this.digest = artifact.digest;
    this.onFault = options.onFault;
    this.deadlineMs = options.deadlineMs ?? DEFAULT_DECISION_DEADLINE_MS;
    this.keyIdentities = tables.apiKeys.map((k) =>
      Object.freeze({ kind: 'apiKey' as const, id: k.id, tenant: k.tenant, plan: k.plan }),
    );
    this.routeLimits = tables.routes.map((_, i) =>
      tables.rateLimits.filter((l) => l.routes.length === 0 || l.routes.includes(i)),
    );
    this.routeIpKeyed = this.routeLimits.map((ls) => ls.some((l) => l.key === 'request.ip'));
    // The host owns the memory and fixes its maximum: the module cannot grow past it.
    const memory = new WebAssembly.Memory({ initial: tables.memoryPages, maximum: tables.memoryPages });
    let instance: WebAssembly.Instance;
    try {
      instance = new WebAssembly.Instance(module, {
        [IMPORT_MODULE]: { [IMPORT_MEMORY]: memory },
        [METER_MODULE]: { [METER_REFUEL]: () => this.refuel() },
      });
    } catch (err) {
      // A LinkError (memory limits that disagree with the tables) or a trap in a start function.
      throw abiMismatch(`instantiation failed: ${(err as Error).message}`);
    }
    this.decideFn = instance.exports.decide as () => number;
    this.u8 = new Uint8Array(memory.buffer);
    this.u32 = new Uint32Array(memory.buffer);
    this.i32 = new Int32Array(memory.buffer);
  }

  /**
   * Instantiates a verified artifact. Refuses (ARTIFACT_NOT_VERIFIED) anything core's
   * verifier did not make, checked at run time: a copy with another module is not verified.
   */
  static load(artifact: VerifiedArtifact, options: PolicyHostOptions = {}): PolicyHost {
    assertVerifiedArtifact(artifact);
    return new PolicyHost(artifact, options);
  }

  /**
   * The same verified artifact run from its verified bytes without metering: no deadline.
   * Only benchmarks use it (through `@apx/core/testing`), to measure what metering costs.
   */
  static [UNMETERED_FOR_BENCHMARKS](artifact: VerifiedArtifact, bytes: Uint8Array): PolicyHost {
    assertVerifiedArtifact(artifact);
    if (`sha256:${createHash('sha256').update(bytes).digest('hex')}` !== artifact.digest) {
      throw new Error('these bytes are not the verified artifact');
    }
    return new PolicyHost(artifact, {}, new WebAssembly.Module(bytes));
  }

  /** False once a decision ran past the deadline: every later decision is that deny. */
  get healthy(): boolean {
    return this.stopped === undefined;
  }

  /** The metered module's refuel import: another chunk of fuel, or the end of the decision. */
  private refuel(): number {
    const now = performance.now();
    if (this.meteredSeq !== this.decisionSeq) {
      this.meteredSeq = this.decisionSeq;
      this.meteredSince = now;
    } else if (now - this.meteredSince > this.deadlineMs) {
      throw new DeadlineExceeded();
    }
    return FUEL_CHUNK;
  }

  decide(request: PolicyRequest): PolicyDecision {
    if (this.stopped) return this.stopped;
    try {
      this.encode(request);
    } catch (err) {
      // The request area is half-written: nothing in it may be reused.
      this.forget();
      if (err instanceof RequestTooLarge) {
        this.fault('oversized', 'request attributes exceed the 64 KiB request area');
        return faultDecision('request attributes too large', 431);
      }
      // A request that does not have the documented shape (e.g. a header value that is not a
      // string) is a bug in the caller; it still must not let anything through.
      this.fault('invalid-request', `request attributes could not be encoded: ${(err as Error).message}`);
      return faultDecision('invalid request attributes', 400);
    }
    let rc: number;
    this.decisionSeq++;
    try {
      rc = this.decideFn();
    } catch (err) {
      if (err instanceof DeadlineExceeded) {
        // The module was unwound mid-decision: its globals may be half-updated, and a request
        // that loops once loops again. It is never entered again.
        this.stopped = faultDecision('policy stopped: decision deadline exceeded', 503);
        this.fault('deadline', `policy stopped: a decision ran past its ${this.deadlineMs} ms deadline`);
        return this.stopped;
      }
      this.fault('trap', `policy trapped: ${(err as Error).message}`);
      return faultDecision('policy evaluation failed', 500);
    }
    return this.readDecision(rc, request);
  }

  private fault(kind: PolicyFault['kind'], message: string): void {
    this.onFault?.({ kind, message, policy: `${this.meta.policy}@${this.meta.version}`, digest: this.digest });
  }

  private forget(): void {
    this.slotInterned.fill(undefined);
    this.jwtCleared = -1;
    this.lastIpText = undefined;
    this.lastApiKey = undefined;
  }

  /**
   * Writes the request area. Work already done for an earlier request is reused when it is
   * still in memory (the module never writes the request area, docs/abi.md): interned strings,
   * the parsed address and the key hash. Every reuse is decided by comparing string values,
   * so a caller reusing and mutating its request objects still gets every change encoded.
   */
  private encode(req: PolicyRequest): void {
    if (this.internFull) this.dropInterned();
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

  private dropInterned(): void {
    this.interned.clear();
    this.internedLower.clear();
    this.scopeLists.clear();
    this.audLists.clear();
    this.internLow = REQUEST_END;
    this.internFull = false;
    this.slotInterned.fill(undefined);
  }

  private encodeAll(req: PolicyRequest): void {
    const u32 = this.u32;
    const t = this.tables;
    this.cursor = REQUEST_VAR_OFFSET;
    this.limit = this.interning ? this.internLow : REQUEST_END;
    this.field(REQUEST.method, req.method, false);
    this.field(REQUEST.host, req.host, true);
    this.field(REQUEST.path, req.path, false);
    const ipText = req.ip ?? '';
    this.field(REQUEST.ip, ipText, false);
    if (ipText !== this.lastIpText) {
      const ip = this.parseIpCached(ipText);
      // Word stores: cheaper than TypedArray#set for 16 bytes on the hot path.
      const ipWords = ip ? ip.words : ZERO_WORDS;
      const at = REQUEST.ipBytes >> 2;
      u32[REQUEST.ipFamily >> 2] = ip ? ip.family : 0;
      u32[at] = ipWords[0] as number;
      u32[at + 1] = ipWords[1] as number;
      u32[at + 2] = ipWords[2] as number;
      u32[at + 3] = ipWords[3] as number;
      this.lastIpText = ipText;
    }
    u32[REQUEST.bodySize >> 2] = clampBodySize(req.bodySize);
    const headers = req.headers;
    const apiKey = t.apiKeyHeader !== null && headers ? ownHeader(headers, t.apiKeyHeader) : undefined;
    if (apiKey === undefined) {
      u32[REQUEST.apiKeyPresent >> 2] = 0;
      this.lastApiKey = undefined;
    } else if (apiKey !== this.lastApiKey) {
      u32[REQUEST.apiKeyPresent >> 2] = 1;
      const h = this.hashKey(apiKey);
      const k = REQUEST.apiKeySha256 >> 2;
      for (let i = 0; i < 8; i++) u32[k + i] = h[i] as number;
      this.lastApiKey = apiKey;
    }
    this.encodeJwt(req);
    const slots = t.headerSlots;
    for (let i = 0; i < slots.length; i++) {
      const v = headers ? ownHeader(headers, slots[i] as string) : undefined;
      const at = REQUEST.headerSlots + 8 * i;
      if (v === undefined) {
        u32[at >> 2] = 0;
        this.slotInterned[at >> 2] = undefined;
      } else this.field(at, v, false);
    }
  }

  /**
   * The claims a policy sees, encoded straight from the claims object with the normalization
   * of normalizeClaims (request.ts), which the reference evaluator uses: no intermediate arrays.
   */
  private encodeJwt(req: PolicyRequest): void {
    const u32 = this.u32;
    const jwt = this.tables.jwt !== null ? req.jwt : undefined;
    this.jwtIdentity = undefined;
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
      si[REQUEST.jwtIss >> 2] = si[REQUEST.jwtSub >> 2] = si[REQUEST.jwtTenant >> 2] = si[REQUEST.jwtPlan >> 2] = undefined;
      this.jwtCleared = state;
      return;
    }
    this.jwtCleared = -1;
    const c: JwtClaims = jwt.claims;
    const sub = c.sub ?? '';
    const tenant = c.tenant ?? '';
    const plan = c.plan ?? '';
    u32[REQUEST.jwtState >> 2] = JwtState.VERIFIED;
    this.field(REQUEST.jwtIss, c.iss ?? '', false);
    this.field(REQUEST.jwtSub, sub, false);
    this.field(REQUEST.jwtTenant, tenant, false);
    this.field(REQUEST.jwtPlan, plan, false);
    const aud = c.aud;
    if (typeof aud === 'string') {
      if (!this.internList(REQUEST.jwtAud, aud, false)) this.single(REQUEST.jwtAud, aud);
    } else this.list(REQUEST.jwtAud, aud ?? EMPTY_LIST);
    const scope = c.scope;
    if (typeof scope === 'string') {
      if (!this.internList(REQUEST.jwtScopes, scope, true)) this.spaceList(REQUEST.jwtScopes, scope);
    } else this.list(REQUEST.jwtScopes, c.scp ?? EMPTY_LIST);
    this.list(REQUEST.jwtRoles, c.roles ?? EMPTY_LIST);
    // Consecutive requests of one caller share one identity object (compared by value).
    let identity = this.lastJwtIdentity;
    if (identity === undefined || identity.id !== sub || identity.tenant !== tenant || identity.plan !== plan) {
      identity = Object.freeze<DecisionIdentity>({ kind: 'jwt', id: sub, tenant, plan });
      this.lastJwtIdentity = identity;
      this.jwtDecisions.clear();
    }
    this.jwtIdentity = identity;
  }

  /**
   * A string attribute: from the intern region when seen before, else interned when short and
   * ASCII and there is room, else written at the cursor like any per-request data.
   */
  private field(at: number, s: string, lower: boolean): void {
    const slot = at >> 2;
    const si = this.slotInterned;
    // (undefined marks "not interned": an undefined attribute must go on to fail in str.)
    if (s === si[slot] && s !== undefined) return;
    si[slot] = undefined;
    const map = lower ? this.internedLower : this.interned;
    const hit = map.get(s);
    const u32 = this.u32;
    if (hit !== undefined) {
      u32[slot] = hit & 0xffff;
      u32[slot + 1] = hit >>> 16;
      si[slot] = s;
      return;
    }
    const n = typeof s === 'string' ? s.length : 0;
    // (An empty string is not interned: its pointer could be the end of memory, 65536.)
    if (!this.interning || n === 0 || n > MAX_INTERNED || typeof s !== 'string') {
      this.str(at, s, lower);
      return;
    }
    // Top-down, word-aligned, never below what this request has written nor past the cap.
    const p = (this.internLow - n) & ~3;
    if (p < this.cursor || p < REQUEST_END - INTERN_BYTES) {
      this.internFull = true;
      this.str(at, s, lower);
      return;
    }
    const u8 = this.u8;
    for (let i = 0; i < n; i++) {
      let c = s.charCodeAt(i);
      if (c > 0x7f) {
        // Non-ASCII is rare: it takes the general path (the bytes written here are unused).
        this.str(at, s, lower);
        return;
      }
      if (lower && c >= 0x41 && c <= 0x5a) c += 0x20;
      u8[p + i] = c;
    }
    this.internLow = p;
    this.limit = p;
    map.set(s, p | (n << 16));
    u32[slot] = p;
    u32[slot + 1] = n;
    si[slot] = s;
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

  /**
   * A list made from one claim string, interned like `field` does for strings: the whole
   * string's bytes once, the list's pairs pointing into them. `split` makes the list of the
   * string's non-empty space-separated parts (`scope`), else a one-element list (`aud`).
   * False when it could not be interned (the caller then writes it per request).
   */
  private internList(at: number, s: string, split: boolean): boolean {
    const map = split ? this.scopeLists : this.audLists;
    const u32 = this.u32;
    const hit = map.get(s);
    if (hit !== undefined) {
      u32[at >> 2] = hit;
      return true;
    }
    const n = s.length;
    if (!this.interning || n > MAX_INTERNED) return false;
    let count = split ? 0 : 1;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c > 0x7f) return false;
      if (split && c !== 0x20 && (i === 0 || s.charCodeAt(i - 1) === 0x20)) count++;
    }
    if (count === 0) {
      u32[at >> 2] = 0;
      return true;
    }
    const q = (this.internLow - (4 + 8 * count + n)) & ~3;
    if (q < this.cursor || q < REQUEST_END - INTERN_BYTES) {
      this.internFull = true;
      return false;
    }
    const text = q + 4 + 8 * count;
    const u8 = this.u8;
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
    this.internLow = q;
    this.limit = q;
    map.set(s, q);
    u32[at >> 2] = q;
    return true;
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

  /** SHA-256 of a presented key as 8 words in memory order, from a small bounded cache. */
  private hashKey(key: string): Uint32Array {
    let h = this.keyHashes.get(key);
    if (h === undefined) {
      const d = createHash('sha256').update(key, 'utf8').digest();
      h = new Uint32Array(d.buffer.slice(d.byteOffset, d.byteOffset + 32));
      // Only plausible keys are cached, so hostile headers cannot grow memory.
      if (key.length <= MAX_CACHED_KEY) {
        if (this.keyHashes.size >= CACHE_MAX) this.keyHashes.clear();
        this.keyHashes.set(key, h);
      }
    }
    return h;
  }

  private parseIpCached(text: string): CachedIp | undefined {
    let ip = this.ips.get(text);
    if (ip === undefined) {
      const parsed = parseIp(text);
      ip = parsed
        ? {
            family: parsed.family,
            words: new Uint32Array(parsed.bytes.buffer.slice(parsed.bytes.byteOffset, parsed.bytes.byteOffset + 16)),
          }
        : null;
      if (text.length <= MAX_IP_TEXT) {
        if (this.ips.size >= CACHE_MAX) this.ips.clear();
        this.ips.set(text, ip);
      }
    }
    return ip ?? undefined;
  }

  private readDecision(rc: number, req: PolicyRequest): PolicyDecision {
    const i32 = this.i32;
    const t = this.tables;
    const effect = i32[DECISION.effect >> 2] as number;
    const status = i32[DECISION.status >> 2] as number;
    const reason = i32[DECISION.reason >> 2] as number;
    const route = i32[DECISION.route >> 2] as number;
    const rule = i32[DECISION.rule >> 2] as number;
    const kind = i32[DECISION.identityKind >> 2] as number;
    const key = i32[DECISION.apiKey >> 2] as number;
    const wellFormed =
      rc === DECIDE_OK &&
      (effect === 0 || effect === 1) &&
      status >= 100 &&
      status <= 599 &&
      reason >= 0 &&
      reason < t.reasons.length &&
      // Only a request that matched a route can be allowed (docs/policy-language.md, order).
      route >= (effect === 1 ? 0 : -1) &&
      route < t.routes.length &&
      rule >= -1 &&
      rule < t.rules.length &&
      (kind === IdentityKind.API_KEY
        ? key >= 0 && key < t.apiKeys.length
        : key === -1 && (kind === IdentityKind.NONE || (kind === IdentityKind.JWT && this.jwtIdentity !== undefined)));
    if (!wellFormed) {
      this.fault('malformed', `malformed decision record (rc=${rc} effect=${effect} status=${status} reason=${reason})`);
      return faultDecision('policy evaluation failed', 500);
    }
    const allow = effect === 1;
    // Most outcomes are static: everything in them comes from the tables and the identity
    // (charges that do not carry the client address). Those are built once per (route, rule,
    // key) and shared, frozen: API-key and anonymous callers in one cache, the current JWT
    // caller in another that is emptied whenever a token with another identity arrives. The
    // cached decision is reused only while the record's effect, status and reason still match
    // it, so the cache cannot change an answer.
    if (!allow || !this.routeIpKeyed[route]) {
      const cache = kind === IdentityKind.JWT ? this.jwtDecisions : this.decisions;
      const slot = ((route + 1) * (t.rules.length + 1) + rule + 1) * (t.apiKeys.length + 1) + key + 1;
      const cached = cache.get(slot);
      if (
        cached !== undefined &&
        cached.status === status &&
        cached.reason === t.reasons[reason] &&
        (cached.effect === 'allow') === allow
      ) {
        return cached;
      }
      const d = this.build(allow, status, reason, route, rule, kind, key, req);
      if (!Object.isFrozen(d.rateLimits)) {
        for (const c of d.rateLimits) Object.freeze(c);
        Object.freeze(d.rateLimits);
      }
      Object.freeze(d);
      if (cache.size >= CACHE_MAX) cache.clear();
      cache.set(slot, d);
      return d;
    }
    return this.build(allow, status, reason, route, rule, kind, key, req);
  }

  private build(
    allow: boolean,
    status: number,
    reason: number,
    route: number,
    rule: number,
    kind: number,
    key: number,
    req: PolicyRequest,
  ): PolicyDecision {
    const t = this.tables;
    const identity = this.identity(kind, key);
    return {
      effect: allow ? 'allow' : 'deny',
      status,
      reason: t.reasons[reason] as string,
      route: route < 0 ? null : (t.routes[route]?.name ?? null),
      rule: rule < 0 ? null : (t.rules[rule]?.name ?? null),
      identity,
      headers: allow ? t.headers : NO_HEADER_MUTATIONS,
      rateLimits: allow ? this.chargesFor(route, kind, key, identity, req) : NO_CHARGES,
    };
  }

  private identity(kind: number, key: number): DecisionIdentity {
    if (kind === IdentityKind.API_KEY) return this.keyIdentities[key] as DecisionIdentity;
    if (kind === IdentityKind.JWT && this.jwtIdentity) return this.jwtIdentity;
    return ANONYMOUS;
  }

  private chargesFor(
    route: number,
    kind: number,
    key: number,
    identity: DecisionIdentity,
    req: PolicyRequest,
  ): readonly RateLimitCharge[] {
    const limits = this.routeLimits[route];
    if (limits === undefined || limits.length === 0) return NO_CHARGES;
    // request.ip-keyed limits vary per request; only pure identity limits are cached.
    if (this.routeIpKeyed[route]) return this.charges(route, identity, req);
    if (kind !== IdentityKind.API_KEY) return this.charges(route, identity, req);
    const slot = route * this.tables.apiKeys.length + key;
    let charges = this.keyCharges.get(slot);
    if (charges === undefined) {
      charges = Object.freeze(this.charges(route, identity, req).map((c) => Object.freeze(c)));
      this.keyCharges.set(slot, charges);
    }
    return charges;
  }

  private charges(route: number, identity: DecisionIdentity, req: PolicyRequest): readonly RateLimitCharge[] {
    const limits = this.routeLimits[route];
    if (limits === undefined || limits.length === 0) return NO_CHARGES;
    const out: RateLimitCharge[] = [];
    for (const l of limits) {
      const value = l.key === 'identity.tenant' ? identity.tenant : l.key === 'identity.id' ? identity.id : (req.ip ?? '');
      // A bucket without a key value (anonymous caller, no address) cannot be charged.
      if (value === '') continue;
      out.push({ name: l.name, key: l.key, value, limit: l.limit, windowSeconds: l.windowSeconds, burst: l.burst });
    }
    return out.length === 0 ? NO_CHARGES : out;
  }
}
