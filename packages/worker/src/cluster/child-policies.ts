import { formatArtifactRef } from '@apx/core';
import { adoptHandedArtifact } from '@apx/core/handoff';
import type { LoadedPolicy } from '../loader.js';
import type { RuntimeFactory } from '../runtime.js';
import type { ServingPolicies, ServingState } from '../serving-policies.js';
import type { HandedSet } from './protocol.js';

/** One generation as a child serves it. */
interface View {
  generation: number;
  discovering: boolean;
  readiness: { ready: boolean; reason?: string };
  states: ServingState[];
  byId: Map<string, LoadedPolicy>;
}

const EMPTY: View = {
  generation: 0,
  discovering: false,
  readiness: { ready: false, reason: 'waiting for the verified policies from the primary process' },
  states: [],
  byId: new Map(),
};

/**
 * A serving child's policies: the sets its primary verified and handed over, instantiated
 * here. A new set is prepared beside the one serving (its new artifacts adopted and
 * instantiated, the unchanged ones kept as they are) and replaces it in one assignment at
 * commit, so a request sees one generation or the next, never a mix.
 */
export class ChildPolicies implements ServingPolicies {
  #view: View = EMPTY;
  #prepared: View | undefined;
  readonly #runtimeFactory: RuntimeFactory;

  constructor(runtimeFactory: RuntimeFactory) {
    this.#runtimeFactory = runtimeFactory;
  }

  get discovering(): boolean {
    return this.#view.discovering;
  }

  get generation(): number {
    return this.#view.generation;
  }

  get(policyId: string): LoadedPolicy | undefined {
    return this.#view.byId.get(policyId);
  }

  list(): readonly ServingState[] {
    return this.#view.states;
  }

  readiness(): { ready: boolean; reason?: string } {
    return this.#view.readiness;
  }

  /** Every digest this child serves now (the primary sends the bytes of the others only). */
  digests(): Set<string> {
    return new Set([...this.#view.byId.values()].map((l) => l.artifact.digest));
  }

  /** Instantiates `set` beside the serving one; throws (fails closed) when an artifact is refused. */
  prepare(set: HandedSet): void {
    this.#prepared = undefined;
    this.#prepared = this.#build(set);
  }

  /** Serves the prepared set from now on. */
  commit(generation: number): void {
    const prepared = this.#prepared;
    if (prepared?.generation !== generation) {
      throw new Error(`commit of generation ${generation}, but ${prepared ? prepared.generation : 'none'} is prepared`);
    }
    this.#view = prepared;
    this.#prepared = undefined;
  }

  /** New statuses, the same serving digests: applied at once (nothing new can serve through here). */
  update(set: HandedSet): void {
    const next = this.#build(set);
    const same = (a: View, b: View) => a.byId.size === b.byId.size && [...a.byId].every(([id, l]) => b.byId.get(id) === l);
    if (!same(next, this.#view)) throw new Error(`update of generation ${set.generation} changes what serves`);
    this.#view = next;
  }

  #build(set: HandedSet): View {
    const held = new Map<string, LoadedPolicy>();
    for (const l of this.#view.byId.values()) held.set(`${l.refText} ${l.artifact.digest}`, l);
    const byId = new Map<string, LoadedPolicy>();
    const states: ServingState[] = set.policies.map((p) => {
      let current: LoadedPolicy | undefined;
      if (p.current) {
        const { refText, handed } = p.current;
        current = held.get(`${refText} ${handed.verdict.digest}`);
        if (!current) {
          if (!handed.bytes) throw new Error(`${refText}: the primary sent no bytes for ${handed.verdict.digest}`);
          // The one place a serving child makes a VerifiedArtifact: from bytes its primary
          // verified and sent over the private IPC channel (docs/security-model.md).
          const artifact = adoptHandedArtifact({ bytes: handed.bytes, verdict: handed.verdict });
          if (formatArtifactRef(artifact.ref) !== refText) throw new Error(`${refText}: handed as ${artifact.ref.policyId}`);
          current = { ref: artifact.ref, refText, artifact, runtime: this.#runtimeFactory(artifact), loadedAt: new Date() };
        }
        byId.set(p.policyId, current);
      }
      return {
        policyId: p.policyId,
        current,
        refused: p.refused,
        lastError: p.lastError === undefined ? undefined : { message: p.lastError },
      };
    });
    return { generation: set.generation, discovering: set.discovering, readiness: set.readiness, states, byId };
  }
}
