import { createHash } from 'node:crypto';
import { assertVerifiedArtifact, type VerifiedArtifact } from '../artifact/verified-artifact.js';
import { IMPORT_MEMORY, IMPORT_MODULE, METER_MODULE, METER_REFUEL, type PolicyMeta, type PolicyTables } from './abi.js';
import { abiMismatch } from './abi-check.js';
import { ANONYMOUS, NO_HEADER_MUTATIONS, type PolicyDecision } from './decision.js';
import { DecisionReader } from './decision-reader.js';
import { FUEL_CHUNK } from './meter.js';
import type { PolicyRequest } from './request.js';
import { RequestEncoder, RequestTooLarge } from './request-encoder.js';

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
  private readonly encoder: RequestEncoder;
  private readonly reader: DecisionReader;

  private constructor(artifact: VerifiedArtifact, options: PolicyHostOptions, module = artifact.module) {
    // The verifier checked the ABI and froze the tables (decisions hand out parts of them).
    const { meta, tables } = artifact;
    this.meta = meta;
    this.tables = tables;
    this.digest = artifact.digest;
    this.onFault = options.onFault;
    this.deadlineMs = options.deadlineMs ?? DEFAULT_DECISION_DEADLINE_MS;
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
    // The memory cannot grow (maximum = initial), so these views stay valid for its lifetime.
    this.encoder = new RequestEncoder(new Uint8Array(memory.buffer), new Uint32Array(memory.buffer), tables);
    this.reader = new DecisionReader(new Int32Array(memory.buffer), tables);
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
      this.encoder.encode(request);
    } catch (err) {
      // The request area is half-written: nothing in it may be reused.
      this.encoder.forget();
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
    const decision = this.reader.read(rc, request);
    if (decision === undefined) {
      this.fault('malformed', `malformed decision record (${this.reader.describe(rc)})`);
      return faultDecision('policy evaluation failed', 500);
    }
    // The module identified the presented key: its digest is worth keeping.
    const key = this.reader.apiKey;
    if (key >= 0) this.encoder.apiKeys.accepted(key);
    return decision;
  }

  private fault(kind: PolicyFault['kind'], message: string): void {
    this.onFault?.({ kind, message, policy: `${this.meta.policy}@${this.meta.version}`, digest: this.digest });
  }
}
