import type { WorkerConfig } from '../config.js';
import { createLogger, logPolicyFault } from '../observability/logger.js';
import { WorkerMetrics } from '../observability/metrics.js';
import { policyHostRuntime } from '../policy-runtime.js';
import { decisionDepsOf, drainFor, openServers, type Servers, type WorkerDeps } from '../worker.js';
import { ChildPolicies } from './child-policies.js';
import { type ChildMessage, isApxMessage, type PrimaryMessage } from './protocol.js';
import { RequestGate } from './request-gate.js';

/** How long a child waits for its primary's aggregate of /metrics before answering 503. */
const SCRAPE_TIMEOUT_MS = 5000;

/**
 * A serving child of the multi-process worker. It never fetches or verifies: it serves the
 * sets its primary hands it over the IPC channel, listens only once it holds one (a replaced
 * child never answers before it has the current set), and exits when its primary goes away
 * (a child without its verifier would serve what nobody can withdraw any more).
 */
export async function runClusterChild(given: WorkerConfig, deps: Pick<WorkerDeps, 'env' | 'cwd' | 'jwt'>): Promise<number> {
  const config = given;
  const log = createLogger().child({ worker_pid: process.pid });
  const metrics = new WorkerMetrics();
  const send = (m: ChildMessage) => process.send?.(m);
  const policies = new ChildPolicies(
    policyHostRuntime((fault) => {
      logPolicyFault(log, fault);
      if (fault.kind !== 'deadline') return;
      metrics.deadlineExceeded.inc({ policy: fault.policy });
      send({ apx: 'deadline', digest: fault.digest, policy: fault.policy });
    }, config.decisionDeadlineMs),
  );
  let scrapes = 0;
  const waitingScrapes = new Map<number, (answer: { text: string; contentType: string } | Error) => void>();
  /** GET /metrics in a serving child: the primary's aggregate of the whole worker. */
  const metricsText = () =>
    new Promise<{ text: string; contentType: string }>((resolve, reject) => {
      const id = ++scrapes;
      const timer = setTimeout(() => {
        waitingScrapes.delete(id);
        reject(new Error('the primary process did not answer with the metrics in time'));
      }, SCRAPE_TIMEOUT_MS);
      timer.unref();
      waitingScrapes.set(id, (answer) => {
        clearTimeout(timer);
        waitingScrapes.delete(id);
        if (answer instanceof Error) reject(answer);
        else resolve(answer);
      });
      send({ apx: 'scrape', id });
    });
  const gate = new RequestGate();
  let draining = false;
  let servers: Servers | undefined;
  let opening: Promise<void> | undefined;
  const decisionDeps = decisionDepsOf(config, deps, { policies, metrics, log });

  // Signals are the primary's to act on (it tells every child to drain); a terminal's Ctrl-C
  // reaches the whole process group, and a child must not stop on its own.
  process.on('SIGINT', () => undefined);
  process.on('SIGTERM', () => undefined);
  // Without its primary nothing verified can arrive or be withdrawn: stop at once.
  process.on('disconnect', () => process.exit(1));

  const handle = async (m: PrimaryMessage): Promise<void> => {
    switch (m.apx) {
      case 'prepare':
        try {
          policies.prepare(m.set);
          send({ apx: 'prepared', generation: m.set.generation });
        } catch (err) {
          send({ apx: 'failed', generation: m.set.generation, error: (err as Error).message });
        }
        return;
      case 'fence':
        gate.fence(() => send({ apx: 'fenced', generation: m.generation }));
        return;
      case 'commit':
        policies.commit(m.generation);
        gate.release();
        send({ apx: 'committed', generation: m.generation });
        if (!servers) {
          opening ??= openServers(config, decisionDeps, () => draining, {
            decisions: (service) => gate.decisions(service),
            metricsText,
          }).then(
            (s) => {
              servers = s;
              send({ apx: 'listening', url: s.url });
            },
            (err: { message: string; hint?: string }) => {
              // A port in use or a wrong host: the operator's to fix; the primary stops too.
              process.stderr.write(`ERROR: ${err.message}${err.hint ? `; ${err.hint}` : ''}\n`);
              process.exit(2);
            },
          );
        }
        return;
      case 'update':
        policies.update(m.set); // throws (and the child exits) if it would change what serves
        return;
      case 'collect-metrics': {
        // Counters and histograms are per process and summed by the primary; gauges describe
        // the verified state, which only the primary holds.
        const families = (await metrics.registry.getMetricsAsJSON()).filter((f) => String(f.type) !== 'gauge');
        send({ apx: 'metrics', id: m.id, families });
        return;
      }
      case 'metrics-text':
        waitingScrapes.get(m.id)?.({ text: m.text, contentType: m.contentType });
        return;
      case 'drain':
        draining = true;
        await opening;
        await drainFor(config.drainMs, log, () => undefined);
        await servers?.close();
        process.exit(0);
    }
  };
  process.on('message', (m: unknown) => {
    if (!isApxMessage(m)) return;
    handle(m as PrimaryMessage).catch((err: unknown) => {
      // A child that cannot apply what its primary sent must not serve on: it exits and is replaced.
      log.error({ err: (err as Error).message }, `serving process failed: ${(err as Error).message}; exiting`);
      process.exit(1);
    });
  });
  send({ apx: 'hello' });
  // Runs until the primary tells it to drain, or goes away.
  return new Promise<number>(() => undefined);
}
