import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { DecisionOutcome, DecisionService, GatewayDecision } from '../gateway/decision-service.js';

/** How long a fence waits for requests in flight before cutting them off. */
export const FENCE_WAIT_MS = 1000;

type Listener = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * Holds a serving child's requests while its cluster switches policy sets, so that no process
 * answers with the old set once any has answered with the new one.
 *
 * fence(): new requests wait; once those in flight have finished (at most FENCE_WAIT_MS, past
 * which they are cut off, unanswered: fail closed), the child tells its primary it is fenced.
 * release(): after the commit, the held requests run against the new set. GET /metrics is
 * answered by `metrics` (the primary's aggregate) and never held.
 */
export class RequestGate {
  #fenced = false;
  readonly #held: Array<() => void> = [];
  /** HTTP responses in flight (the hot path: no allocation per request beyond the Set entry). */
  readonly #responses = new Set<ServerResponse>();
  /** gRPC calls in flight. */
  readonly #calls = new Set<{ cutOff(): void }>();
  #drained: (() => void) | undefined;
  readonly #metrics: (res: ServerResponse) => void;

  constructor(metrics: (res: ServerResponse) => void) {
    this.#metrics = metrics;
  }

  /** Puts the gate in front of the server's own request handler. */
  http(server: Server): void {
    const handlers = server.listeners('request') as Listener[];
    server.removeAllListeners('request');
    const handler: Listener =
      handlers.length === 1
        ? (handlers[0] as Listener)
        : (req, res) => {
            for (const h of handlers) h(req, res);
          };
    const gate = this;
    function closed(this: ServerResponse): void {
      gate.#responses.delete(this);
      gate.#settle();
    }
    const serve = (req: IncomingMessage, res: ServerResponse) => {
      this.#responses.add(res);
      res.once('close', closed);
      handler(req, res);
    };
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (req.method === 'GET' && (req.url === '/metrics' || req.url?.startsWith('/metrics?'))) return this.#metrics(res);
      if (this.#fenced) this.#held.push(() => serve(req, res));
      else serve(req, res);
    });
  }

  /** The gRPC ext_authz service behind the same gate. */
  decisions(service: DecisionService): DecisionService {
    return {
      evaluate: (ref, request, done) =>
        this.#admit(() => this.#tracked(done, CUT_OFF_OUTCOME, (answer) => service.evaluate(ref, request, answer))),
      decide: (ref, request, done) =>
        this.#admit(() => this.#tracked(done, cutOffDecision(), (answer) => service.decide(ref, request, answer))),
    };
  }

  /** Runs `call` counted as in flight until it answers; cut off at a fence, it answers `cutOff` (fail closed). */
  #tracked<T>(done: (answer: T) => void, cutOff: T, call: (answer: (a: T) => void) => void): void {
    let answered = false;
    const entry = {
      cutOff: () => {
        answered = true;
        this.#calls.delete(entry);
        done(cutOff);
      },
    };
    this.#calls.add(entry);
    call((a) => {
      if (answered) return;
      answered = true;
      this.#calls.delete(entry);
      this.#settle();
      done(a);
    });
  }

  /** Holds new requests; `fenced` is called once none is in flight. */
  fence(fenced: () => void): void {
    this.#fenced = true;
    if (this.#responses.size === 0 && this.#calls.size === 0) {
      fenced();
      return;
    }
    const timer = setTimeout(() => {
      // Unanswered rather than answered by a set another process may have dropped.
      for (const res of this.#responses) res.socket?.destroy();
      this.#responses.clear();
      for (const call of [...this.#calls]) call.cutOff();
      this.#drained?.();
    }, FENCE_WAIT_MS);
    this.#drained = () => {
      clearTimeout(timer);
      this.#drained = undefined;
      fenced();
    };
  }

  /** Runs the held requests (against the set committed meanwhile) and lets new ones through. */
  release(): void {
    this.#fenced = false;
    for (const run of this.#held.splice(0)) run();
  }

  #admit(run: () => void): void {
    if (this.#fenced) this.#held.push(run);
    else run();
  }

  /** Something in flight answered: a fence waiting for it may be complete. */
  #settle(): void {
    if (this.#drained && this.#responses.size === 0 && this.#calls.size === 0) this.#drained();
  }
}

const CUT_OFF_ERROR = 'the worker switched policy sets while this decision was in flight; retry';

/** What a gRPC Check cut off at a fence comes to: no decision (UNAVAILABLE), so the gateway refuses the request. */
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
