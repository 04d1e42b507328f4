import type { Worker } from 'node:cluster';
import type { WorkerLogger } from '../observability/logger.js';
import { fingerprint, servingDigests } from './hand-off.js';
import type { ChildMessage, HandedSet, PrimaryMessage } from './protocol.js';

/** How long a child may take to instantiate a set, or to fence, before it is replaced. */
export const PREPARE_TIMEOUT_MS = 30_000;
export const FENCE_TIMEOUT_MS = 5_000;

/** One serving child as the primary tracks it. */
interface Child {
  worker: Worker;
  /** Digests it serves (committed): their bytes are not sent again. */
  digests: Set<string>;
  /** True once it holds a committed set (and so may be listening). */
  admitted: boolean;
  waiting: Map<string, { resolve(m: ChildMessage): void; reject(err: Error): void }>;
}

/**
 * Keeps every serving child on one generation of the primary's verified policy set.
 *
 * A change of what serves (a swap, a revocation, a new policy, an unload) is applied in three
 * steps, one change at a time: every child prepares the new set beside the serving one; then
 * every child fences (holds new requests, finishes those in flight); then every child commits
 * and answers the held requests with the new set. No child commits before every child is
 * fenced, so once any process has answered with the new set (refused a revoked digest), no
 * process answers with the old one again. A child that fails or does not answer in time is
 * killed (it serves nothing more) and replaced; a replacement is brought to the committed set
 * before it listens. A change of statuses only (readiness, errors) is sent as it is.
 */
export class SetCoordinator {
  readonly #children = new Map<number, Child>();
  readonly #log: WorkerLogger;
  #committed: HandedSet;
  #queue: Promise<void> = Promise.resolve();

  constructor(initial: HandedSet, log: WorkerLogger) {
    this.#committed = initial;
    this.#log = log;
  }

  /** The set every admitted child serves. */
  get committed(): HandedSet {
    return this.#committed;
  }

  /** The live children, admitted or not. */
  get workers(): Worker[] {
    return [...this.#children.values()].map((c) => c.worker);
  }

  /** A forked child: it is brought to the committed set once it says hello (after any change in progress). */
  add(worker: Worker): void {
    const child: Child = { worker, digests: new Set(), admitted: false, waiting: new Map() };
    this.#children.set(worker.id, child);
    worker.on('message', (m: ChildMessage) => {
      if (m.apx === 'hello') {
        this.#enqueue(() => this.#admit(child));
        return;
      }
      const key = 'generation' in m ? `${m.apx} ${m.generation}` : undefined;
      if (m.apx === 'failed') {
        for (const [k, w] of child.waiting) if (k.endsWith(` ${m.generation}`)) w.reject(new Error(m.error));
        return;
      }
      if (key) child.waiting.get(key)?.resolve(m);
    });
  }

  /** A child that exited: nothing waits on it any more. */
  remove(worker: Worker): void {
    const child = this.#children.get(worker.id);
    if (!child) return;
    this.#children.delete(worker.id);
    for (const w of child.waiting.values()) w.reject(new Error('the serving process exited'));
  }

  /** Applies `next` (the primary's set now) to every child, after the changes before it. */
  publish(next: (generation: number) => HandedSet): Promise<void> {
    return this.#enqueue(async () => {
      const set = next(this.#committed.generation + 1);
      if (fingerprint(set) === fingerprint(this.#committed)) return;
      const before = servingDigests(this.#committed);
      const after = servingDigests(set);
      const sameServing = before.size === after.size && [...after].every(([id, d]) => before.get(id) === d);
      const children = [...this.#children.values()].filter((c) => c.admitted);
      if (sameServing) {
        this.#committed = set;
        for (const c of children) this.#send(c, { apx: 'update', set: withoutBytes(set, c.digests) });
        return;
      }
      // Prepare everywhere, then fence everywhere, then commit everywhere.
      const ready = await this.#all(children, (c) =>
        this.#ask(c, { apx: 'prepare', set: withoutBytes(set, c.digests) }, `prepared ${set.generation}`, PREPARE_TIMEOUT_MS),
      );
      const fenced = await this.#all(ready, (c) =>
        this.#ask(c, { apx: 'fence', generation: set.generation }, `fenced ${set.generation}`, FENCE_TIMEOUT_MS),
      );
      this.#committed = set;
      for (const c of fenced) {
        this.#send(c, { apx: 'commit', generation: set.generation });
        c.digests = new Set(after.values());
      }
      if (fenced.length === 0) return; // none listens yet: each gets this set when admitted
      this.#log.info(
        { generation: set.generation, serving: Object.fromEntries(after), processes: fenced.length },
        `every serving process switched to policy set ${set.generation}`,
      );
    });
  }

  /** Brings a new child to the committed set: it serves nothing yet, so no fence is needed. */
  async #admit(child: Child): Promise<void> {
    if (!this.#children.has(child.worker.id)) return;
    const set = this.#committed;
    const ok = await this.#all([child], (c) =>
      this.#ask(c, { apx: 'prepare', set: withoutBytes(set, c.digests) }, `prepared ${set.generation}`, PREPARE_TIMEOUT_MS),
    );
    if (ok.length === 0) return;
    this.#send(child, { apx: 'commit', generation: set.generation });
    child.digests = new Set(servingDigests(set).values());
    child.admitted = true;
  }

  /** Runs `step` on each child; a child that fails is killed (and replaced by the primary). */
  async #all(children: Child[], step: (c: Child) => Promise<unknown>): Promise<Child[]> {
    const results = await Promise.allSettled(children.map(step));
    const ok: Child[] = [];
    results.forEach((r, i) => {
      const c = children[i] as Child;
      if (r.status === 'fulfilled') {
        ok.push(c);
        return;
      }
      this.#log.error(
        { worker_pid: c.worker.process.pid, err: (r.reason as Error).message },
        `serving process ${c.worker.process.pid} did not apply the policy set (${(r.reason as Error).message}): replacing it`,
      );
      this.remove(c.worker);
      c.worker.process.kill('SIGKILL');
    });
    return ok;
  }

  #ask(child: Child, message: PrimaryMessage, answer: string, timeoutMs: number): Promise<ChildMessage> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.waiting.delete(answer);
        reject(new Error(`no answer within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      const settle = () => {
        clearTimeout(timer);
        child.waiting.delete(answer);
      };
      child.waiting.set(answer, {
        resolve: (m) => {
          settle();
          resolve(m);
        },
        reject: (err) => {
          settle();
          reject(err);
        },
      });
      this.#send(child, message);
    });
  }

  #send(child: Child, message: PrimaryMessage): void {
    if (child.worker.isConnected()) child.worker.send(message);
  }

  #enqueue(step: () => Promise<void>): Promise<void> {
    const run = this.#queue.then(step, step);
    this.#queue = run.catch((err: unknown) =>
      this.#log.error({ err: (err as Error).message }, `policy set hand-off failed: ${(err as Error).message}`),
    );
    return this.#queue;
  }
}

/** The set for one child: the bytes of the digests it already serves are left out. */
function withoutBytes(set: HandedSet, held: ReadonlySet<string>): HandedSet {
  return {
    ...set,
    policies: set.policies.map((p) => {
      if (!p.current || !held.has(p.current.handed.verdict.digest)) return p;
      const { bytes: _bytes, ...handed } = p.current.handed;
      return { ...p, current: { refText: p.current.refText, handed } };
    }),
  };
}
