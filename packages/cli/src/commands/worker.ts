import { SETTINGS, type WorkerConfig } from '@apx/worker/config';
import { type CommandSpec, flagString } from '../command.js';

export const workerCommand: CommandSpec = {
  name: 'worker',
  summary: 'Run the verifying worker: load policies by reference, verify them, and serve decisions over HTTP.',
  usage: '[--env ENV] [--store URL] [--public-key KEY] [--allowed-versions LIST] [--policies LIST] [...]',
  details: `Every flag has an environment variable (shown in brackets); flags win. Defaults are the
embedded development set-up: ./artifacts, keys/cosign.pub, strict mode on, port 8080.
Endpoints: POST /v1/decide, GET /v1/policies, GET /metrics, GET /healthz, GET /readyz.
Logs are JSON lines on stdout (severity, message, time, policy_ref, digest, security_event).`,
  // One flag per worker setting, from the worker's own table (a light module: the worker
  // itself and its SDKs load only when the command runs).
  flags: SETTINGS.map((s) => ({
    name: s.flag,
    type: 'string' as const,
    value: s.flag.toUpperCase().replace(/-/g, '_'),
    description: `[${s.env}] ${s.description}${s.default === undefined ? '' : ` (default: ${s.default})`}`,
  })),
  positionals: { min: 0, max: 0, names: '' },
  async run(ctx, args) {
    const { resolveConfig, startWorker } = await import('@apx/worker');
    const flags: Record<string, string | undefined> = {};
    for (const s of SETTINGS) flags[s.flag] = flagString(args, s.flag);
    const { config, warnings } = resolveConfig(ctx.env, flags, { cwd: ctx.cwd });
    // Defence in depth. A promise that rejects with nobody waiting on it is a bug (ours or a
    // client library's: Google's clients did it without credentials), but not one that leaves
    // the worker unsafe: everything the worker loads or decides with is awaited and fails
    // closed on its own, so nothing is half-done because of it. Node's default would end the
    // process and take every policy down; the worker logs it as an error and keeps serving.
    // Exceptions (uncaughtException) still end the process (main.ts).
    let log: { error(fields: object, message: string): void } | undefined;
    const onRejection = (reason: unknown) => {
      const why = reason instanceof Error ? reason.message : String(reason);
      const message = `unhandled promise rejection (the worker keeps running): ${why.replace(/\s*\n\s*/g, ' ')}; this is a bug: rerun with APX_DEBUG=1 and report it`;
      const fields = {
        unhandled_rejection: true,
        ...(ctx.env.APX_DEBUG === '1' && reason instanceof Error && reason.stack ? { stack: reason.stack } : {}),
      };
      if (log) log.error(fields, message);
      else
        ctx.stdout.write(
          `${JSON.stringify({ severity: 'ERROR', time: new Date().toISOString(), service: 'apx-worker', ...fields, message })}\n`,
        );
    };
    process.on('unhandledRejection', onRejection);
    try {
      // APX_WORKERS above 1: a verifying primary and serving children (node:cluster re-runs
      // this command in each child, which must only serve what its primary hands it).
      if (config.workers > 1 || (await isClusterChild())) return await runCluster(config, warnings, ctx);
      const worker = await startWorker(config, warnings, { env: ctx.env, cwd: ctx.cwd });
      log = worker.log;
      // The first SIGTERM or SIGINT drains (APX_DRAIN_SECONDS: /readyz 503, requests still
      // served), then closes and exits 0; a second one exits at once, 128 + its number.
      await new Promise<void>((resolve) => {
        const onSignal = (signal: 'SIGINT' | 'SIGTERM') => {
          if (worker.draining) {
            worker.log.warn({ signal }, `second ${signal}: exiting now, without finishing the drain`);
            process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
          }
          worker.log.info({ signal }, 'worker stopping');
          void worker.drain().then(resolve);
        };
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
      });
    } finally {
      process.off('unhandledRejection', onRejection);
    }
    return 0;
  },
};

/** True in a serving child of the multi-process worker (node:cluster sets NODE_UNIQUE_ID in it). */
async function isClusterChild(): Promise<boolean> {
  if (process.env.NODE_UNIQUE_ID === undefined) return false;
  return (await import('@apx/worker/cluster')).isClusterChild();
}

/**
 * The multi-process worker: in the primary, the first SIGTERM or SIGINT drains every serving
 * process (APX_DRAIN_SECONDS) and exits 0 once they all have; a second kills them and exits at
 * once (128 + its number). In a child, serve until the primary says to drain.
 */
async function runCluster(
  config: WorkerConfig,
  warnings: string[],
  ctx: { env: Record<string, string | undefined>; cwd: string },
): Promise<number> {
  const { isClusterChild: inChild, runClusterChild, startClusterPrimary } = await import('@apx/worker/cluster');
  if (inChild()) return runClusterChild(config, { env: ctx.env, cwd: ctx.cwd });
  const primary = await startClusterPrimary(config, warnings, { env: ctx.env, cwd: ctx.cwd });
  return new Promise<number>((resolve) => {
    void primary.stopped.then(resolve);
    const onSignal = (signal: 'SIGINT' | 'SIGTERM') => {
      if (primary.draining) {
        primary.kill();
        process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
      }
      void primary.drain().then(resolve);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}
