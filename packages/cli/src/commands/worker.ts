import { type CommandSpec, flagString } from '../command.js';

// The worker (and its cloud SDKs) load only when this command runs: the rest of the CLI
// starts without them.
const settings = async () => (await import('@apx/worker')).SETTINGS;

export const workerCommand: CommandSpec = {
  name: 'worker',
  summary: 'Run the verifying worker: load policies by reference, verify them, and serve decisions over HTTP.',
  usage: '[--env ENV] [--store URL] [--public-key KEY] [--allowed-versions LIST] [--policies LIST] [...]',
  details: `Every flag has an environment variable (shown in brackets); flags win. Defaults are the
embedded development set-up: ./artifacts, keys/cosign.pub, strict mode on, port 8080.
Endpoints: POST /v1/decide, GET /v1/policies, GET /metrics, GET /healthz, GET /readyz.
Logs are JSON lines on stdout (severity, message, time, policy_ref, digest, security_event).`,
  // Flags mirror the worker's settings table; kept literal so --help needs no import.
  flags: [
    { name: 'env', type: 'string', value: 'ENV', description: '[APX_ENV] dev, staging or production (default: dev).' },
    {
      name: 'store',
      type: 'string',
      value: 'URL',
      description: '[APX_STORE] directory, file://, gs://, s3:// or oci:// (default: ./artifacts).',
    },
    {
      name: 'public-key',
      type: 'string',
      value: 'KEY',
      description: '[APX_PUBLIC_KEY] PEM file, env://VAR or projects/P/secrets/S/versions/V (default: keys/cosign.pub).',
    },
    {
      name: 'strict-mode',
      type: 'string',
      value: 'BOOL',
      description: '[APX_STRICT_MODE] reject unsigned artifacts (default: true; must be true in production).',
    },
    {
      name: 'allowed-versions',
      type: 'string',
      value: 'LIST',
      description: '[ALLOWED_POLICY_VERSIONS] e.g. "1.0.0,1.1.0" (required in production).',
    },
    {
      name: 'policies',
      type: 'string',
      value: 'LIST',
      description: '[APX_POLICIES] pb-id@version or pb-id, comma-separated (default: all in the store).',
    },
    {
      name: 'require-binding',
      type: 'string',
      value: 'BOOL',
      description: '[APX_REQUIRE_BINDING] require signed name/version/environment (default: true outside dev).',
    },
    {
      name: 'revocations',
      type: 'string',
      value: 'WHERE',
      description: '[APX_REVOCATIONS] signed revocation list to poll: a file, or "store" for revocations.json in the store.',
    },
    {
      name: 'keyring',
      type: 'string',
      value: 'WHERE',
      description: '[APX_KEYRING] rotated keyrings to poll (apx keys rotate): a file, or "store" for keyring.json in the store.',
    },
    {
      name: 'index',
      type: 'string',
      value: 'WHERE',
      description: '[APX_INDEX] signed policy index (freshness): a file, or "store" for index.json in the store.',
    },
    {
      name: 'index-grace',
      type: 'string',
      value: 'SECONDS',
      description: '[APX_INDEX_GRACE] how long an expired index still lets loaded policies serve (default: 3600).',
    },
    {
      name: 'cache-dir',
      type: 'string',
      value: 'DIR',
      description: '[APX_CACHE_DIR] on-disk artifact cache, re-verified on read.',
    },
    { name: 'host', type: 'string', value: 'ADDR', description: '[APX_HOST] listen address (default: 127.0.0.1).' },
    { name: 'port', type: 'string', value: 'PORT', description: '[APX_PORT] listen port (default: 8080).' },
    {
      name: 'reload-interval',
      type: 'string',
      value: 'SECONDS',
      description: '[APX_RELOAD_INTERVAL] seconds between checks for new versions (default: 30; 0 disables).',
    },
    {
      name: 'memory-cache-entries',
      type: 'string',
      value: 'N',
      description: '[APX_MEMORY_CACHE_ENTRIES] verified artifacts kept in memory (default: 64).',
    },
  ],
  positionals: { min: 0, max: 0, names: '' },
  async run(ctx, args) {
    const { resolveConfig, startWorker } = await import('@apx/worker');
    const flags: Record<string, string | undefined> = {};
    for (const s of await settings()) flags[s.flag] = flagString(args, s.flag);
    const { config, warnings } = resolveConfig(ctx.env, flags);
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
