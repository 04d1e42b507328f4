import { SETTINGS } from '@apx/worker/config';
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
    const worker = await startWorker(config, warnings, { env: ctx.env, cwd: ctx.cwd });
    await new Promise<void>((resolve) => {
      const stop = (signal: string) => {
        worker.log.info({ signal }, 'worker stopping');
        void worker.stop().then(resolve);
      };
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
    });
    return 0;
  },
};
