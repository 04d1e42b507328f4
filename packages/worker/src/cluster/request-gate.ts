import type { DecisionOutcome, DecisionService, GatewayDecision } from '../gateway/decision-service.js';

/** How long a fence waits for decisions in flight before cutting them off. */
export const FENCE_WAIT_MS = 1000;

/**
 * Holds a serving child's decisions while its cluster switches policy sets, so that no process
 * answers with the old set once any has answered with the new one.
 *
 * It wraps the decision pipeline, which every protocol (POST /v1/decide, forward-auth, gRPC
 * ext_authz) calls once a request is read and before any policy is looked up: a request still
 * arriving is not yet bound to a set, and a decision is synchronous unless a bearer token is
 * being verified. fence(): new decisions wait; once those in flight have answered (at most
 * FENCE_WAIT_MS, past which they answer "no decision", 503: fail closed), the child tells its
 * primary it is fenced. release(): after the commit, the held decisions run against the new set.
 */
export class RequestGate {
  #fenced = false;
  readonly #held: Array<() => void> = [];
  /** Decisions started and not answered yet (only token-bearing ones outlive the call). */
  readonly #inFlight = new Set<Pending>();
  #drained: (() => void) | undefined;

  /** The decision pipeline behind the gate. */
  decisions(service: DecisionService): DecisionService {
    const evaluate: DecisionService['evaluate'] = (ref, request, done) => {
      if (this.#fenced) {
        this.#held.push(() => evaluate(ref, request, done));
        return;
      }
      let pending: Pending | undefined;
      service.evaluate(ref, request, (o) => {
        if (pending && !this.#answered(pending)) return;
        pending = ANSWERED;
        done(o);
      });
      pending ??= this.#pending(() => done(CUT_OFF_OUTCOME));
    };
    const decide: DecisionService['decide'] = (ref, request, done) => {
      if (this.#fenced) {
        this.#held.push(() => decide(ref, request, done));
        return;
      }
      let pending: Pending | undefined;
      service.decide(ref, request, (d) => {
        if (pending && !this.#answered(pending)) return;
        pending = ANSWERED;
        done(d);
      });
      pending ??= this.#pending(() => done(cutOffDecision()));
    };
    return { evaluate, decide };
  }

  /** Holds new decisions; `fenced` is called once none is in flight. */
  fence(fenced: () => void): void {
    this.#fenced = true;
    if (this.#inFlight.size === 0) {
      fenced();
      return;
    }
    const timer = setTimeout(() => {
      for (const call of [...this.#inFlight]) call.cutOff();
      this.#drained?.();
    }, FENCE_WAIT_MS);
    this.#drained = () => {
      clearTimeout(timer);
      this.#drained = undefined;
      fenced();
    };
  }

  /** Runs the held decisions (against the set committed meanwhile) and lets new ones through. */
  release(): void {
    this.#fenced = false;
    for (const run of this.#held.splice(0)) run();
  }

  /** A decision that did not answer within its call: in flight until it answers or is cut off. */
  #pending(cutOff: () => void): Pending {
    const pending: Pending = {
      done: false,
      cutOff: () => {
        pending.done = true;
        this.#inFlight.delete(pending);
        cutOff();
      },
    };
    this.#inFlight.add(pending);
    return pending;
  }

  /** A decision in flight answered: false if it was cut off meanwhile (its answer is dropped). */
  #answered(pending: Pending): boolean {
    if (pending.done) return false;
    pending.done = true;
    this.#inFlight.delete(pending);
    if (this.#drained && this.#inFlight.size === 0) this.#drained();
    return true;
  }
}

/** A decision in flight (token-bearing ones only: the others answer within the call). */
interface Pending {
  done: boolean;
  cutOff(): void;
}

/** Marks a decision answered within its call (no bookkeeping, nothing allocated). */
const ANSWERED: Pending = { done: true, cutOff: () => undefined };

const CUT_OFF_ERROR = 'the worker switched policy sets while this decision was in flight; retry';

/** A decision cut off at a fence: no decision (503), so the caller or the gateway refuses the request. */
const CUT_OFF_OUTCOME: DecisionOutcome = { kind: 'refused', status: 503, error: CUT_OFF_ERROR };

/** The same as a gateway decision: an error, so the gateway refuses the request. */
function cutOffDecision(): GatewayDecision {
  return {
    kind: 'error',
    status: 503,
    body: JSON.stringify({ error: CUT_OFF_ERROR }),
    headers: {},
    removeHeaders: [],
    responseHeaders: {},
    decisionId: '',
  };
}
