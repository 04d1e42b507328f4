import cluster, { type Worker } from 'node:cluster';
import type { WorkerConfig } from '../config.js';
import { deadlineError, openPolicyService } from '../policy-service.js';
import { logListening, type WorkerDeps } from '../worker.js';
import { SetCoordinator } from './coordinator.js';
import { HandOff } from './hand-off.js';
import { ClusterMetrics } from './metrics-aggregate.js';
import type { ChildMessage, PrimaryMessage } from './protocol.js';

/** How often the primary compares its policy set with the one handed out (events come first; this catches the rest). */
const RECHECK_MS = 1000;
/** How long a scrape waits for each child's counters. */
const COLLECT_TIMEOUT_MS = 2000;
/** Beyond APX_DRAIN_SECONDS: the 5 s requests in flight get to finish, and a little more. */
const DRAIN_MARGIN_MS = 10_000;
/** Pause before a replacement for a child that died, so a crashing child cannot spin the machine. */
const REFORK_DELAY_MS = 500;

/** The multi-process worker, running: what the CLI's signal handling needs. */
export interface ClusterPrimary {
  /** Every child drains (APX_DRAIN_SECONDS) and exits; then the primary closes. Resolves with the exit code. */
  drain(): Promise<number>;
  readonly draining: boolean;
  /** Second signal: children killed at once. */
  kill(): void;
  /** Resolves with the exit code if the worker stops on its own (its serving processes cannot start). */
  readonly stopped: Promise<number>;
}

/**
 * The primary of the multi-process worker (APX_WORKERS above 1): the only process that
 * fetches, verifies and writes the state directory. It forks the serving children, hands each
 * verified policy set to all of them (cluster/coordinator.ts), replaces a child that dies,
 * answers their /metrics with the whole worker's, and drains them on SIGTERM. It listens on no
 * port itself: node:cluster shares the children's listening sockets.
 */
export async function startClusterPrimary(given: WorkerConfig, warnings: string[], deps: WorkerDeps): Promise<ClusterPrimary> {
  const handOff = new HandOff();
  let changed: () => void = () => undefined;
  const service = await openPolicyService(given, warnings, deps, {
    runtimeFactory: () => handOff.runtimeFactory,
    wrapSource: (s) => handOff.wrapSource(s),
    wrapDiskCache: (dir) => handOff.diskCache(dir),
    onSetChange: () => changed(),
  });
  const { config, log, policies } = service;
  const coordinator = new SetCoordinator(handOff.snapshot(policies, 1), log);
  const publish = () => coordinator.publish((generation) => handOff.snapshot(policies, generation));
  let scheduled = false;
  changed = () => {
    if (scheduled) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      void publish();
    });
  };
  const metrics = new ClusterMetrics(service.metrics);

  let draining = false;
  let listening = false;
  let stop: (code: number) => void = () => undefined;
  const stopped = new Promise<number>((resolve) => {
    stop = resolve;
  });
  let collects = 0;
  const collecting = new Map<number, { pending: Set<number>; done(): void }>();

  async function scrape(): Promise<{ text: string; contentType: string }> {
    const id = ++collects;
    const children = coordinator.workers.filter((w) => w.isConnected());
    await new Promise<void>((resolve) => {
      const pending = new Set(children.map((w) => w.id));
      const timer = setTimeout(finish, COLLECT_TIMEOUT_MS);
      function finish() {
        clearTimeout(timer);
        collecting.delete(id);
        resolve();
      }
      collecting.set(id, { pending, done: finish });
      if (pending.size === 0) return finish();
      for (const w of children) w.send({ apx: 'collect-metrics', id } satisfies PrimaryMessage);
    });
    return metrics.text();
  }

  function onMessage(worker: Worker, m: ChildMessage): void {
    switch (m.apx) {
      case 'listening':
        if (!listening) {
          listening = true;
          logListening(config, service, { url: m.url }, log, { workers: config.workers });
        }
        return;
      case 'scrape':
        void scrape().then(
          ({ text, contentType }) => worker.send({ apx: 'metrics-text', id: m.id, text, contentType } satisfies PrimaryMessage),
          (err: unknown) => log.error({ err: (err as Error).message }, `metrics aggregation failed: ${(err as Error).message}`),
        );
        return;
      case 'metrics': {
        metrics.report(worker.id, m.families);
        const c = collecting.get(m.id);
        c?.pending.delete(worker.id);
        if (c && c.pending.size === 0) c.done();
        return;
      }
      case 'deadline':
        // One child stopped it; every child stops serving it (and the primary never loads it again).
        policies.stopDigest(m.digest, deadlineError(m.policy, config.decisionDeadlineMs));
        changed();
        return;
      default:
        return;
    }
  }

  cluster.setupPrimary({ serialization: 'advanced' });
  function fork(): void {
    const worker = cluster.fork();
    coordinator.add(worker);
    worker.on('message', (m: ChildMessage) => onMessage(worker, m));
    worker.on('exit', (code, signal) => {
      coordinator.remove(worker);
      void metrics.retire(worker.id);
      for (const c of collecting.values()) {
        c.pending.delete(worker.id);
        if (c.pending.size === 0) c.done();
      }
      if (draining) {
        if (coordinator.workers.length === 0) void service.close().then(() => stop(0));
        return;
      }
      if (code === 2) {
        // The child could not listen (port in use, wrong host): it said why; nothing will fix it by itself.
        log.error({ worker_pid: worker.process.pid }, 'a serving process could not listen: stopping the worker');
        draining = true;
        for (const w of coordinator.workers) w.process.kill('SIGKILL');
        void service.close().then(() => stop(1));
        return;
      }
      log.error(
        { worker_pid: worker.process.pid, exit_code: code, signal },
        `serving process ${worker.process.pid} exited (${signal ?? `code ${code}`}): starting another; it serves once it holds the current policy set`,
      );
      setTimeout(() => {
        if (!draining) fork();
      }, REFORK_DELAY_MS).unref();
    });
  }
  for (let i = 0; i < config.workers; i++) fork();

  await service.start();
  await publish();
  const recheck = setInterval(changed, RECHECK_MS);
  recheck.unref();

  let drained: Promise<number> | undefined;
  return {
    get draining() {
      return draining;
    },
    stopped,
    drain() {
      drained ??= (async () => {
        draining = true;
        clearInterval(recheck);
        policies.stop();
        const children = coordinator.workers;
        log.info(
          { processes: children.length, drain_seconds: config.drainMs / 1000 },
          'worker stopping: every serving process drains, then closes',
        );
        for (const w of children) if (w.isConnected()) w.send({ apx: 'drain' } satisfies PrimaryMessage);
        if (children.length === 0) void service.close().then(() => stop(0));
        // A serving process that has not closed well after its drain (and the 5 s its requests
        // in flight get) is ended, so that the worker always stops.
        setTimeout(() => {
          for (const w of coordinator.workers) w.process.kill('SIGKILL');
        }, config.drainMs + DRAIN_MARGIN_MS).unref();
        return stopped;
      })();
      return drained;
    },
    kill() {
      draining = true;
      for (const w of coordinator.workers) w.process.kill('SIGKILL');
    },
  };
}
