import { PolicyIndex } from '@apx/core';
import semver from 'semver';
import { type CommandSpec, flagString, type ParsedArgs, UsageError } from '../command.js';
import { type CliContext, info } from '../context.js';
import { DEFAULT_PRIVATE_KEY, openSigner } from '../keyref.js';
import { putDocument, signDocument, withStore } from '../trust-document.js';
import { runTrustPublish } from './trust/publish.js';
import { EXPIRES_FLAG, flagList, JSON_FLAG, KEY_FLAG, STORE_FLAG } from './trust/shared.js';

export const INDEX_OBJECT = 'index.json';
const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

function parseDuration(text: string): number {
  const m = /^(\d+)([smhd])$/.exec(text);
  if (!m) throw new UsageError(`--expires ${text} is not a duration like 30m, 24h or 7d`);
  return Number(m[1]) * (UNITS[m[2] as string] as number);
}

/** A store holds a trust repository when it has tuf/timestamp.json. */
async function hasTrustRepository(ctx: CliContext, url: string): Promise<boolean> {
  return withStore(ctx, url, async (store) => (await store.get('tuf/timestamp.json', { maxBytes: 16_384 })) !== undefined);
}

/**
 * `apx index`: an alias of apx trust publish (the freshness heartbeat). On a store without a
 * trust repository, the legacy signed index.json (workers with APX_INDEX) is still written,
 * with a deprecation warning, until workers drop it.
 */
export const indexCommand: CommandSpec = {
  name: 'index',
  summary: 'Publish freshness (renew snapshot and timestamp): alias of apx trust publish.',
  usage: '[--store URL] --key REF... [--expires ROLE=DURATION | DURATION] [--json]',
  details: `On a store with a trust repository this is apx trust publish (see apx trust publish --help);
--expires 24h (no role) means --expires timestamp=24h. On a store without one it writes the
legacy signed index.json of the current version of each policy (deprecated; workers with
APX_INDEX): --expires DURATION (default 24h) and one --key (default: ${DEFAULT_PRIVATE_KEY}).
See docs/operations.md, "Migrating from keyring / revocations.json / index.json".`,
  flags: [STORE_FLAG, KEY_FLAG, EXPIRES_FLAG, JSON_FLAG],
  positionals: { min: 0, max: 0, names: '' },
  async run(ctx, args) {
    const url = flagString(args, 'store') ?? ctx.env.APX_STORE ?? './artifacts';
    if (!(await hasTrustRepository(ctx, url))) return legacyIndex(ctx, args, url);
    const expires = flagList(args, 'expires').map((e) => (e.includes('=') ? e : `timestamp=${e}`));
    return runTrustPublish(ctx, { ...args, flags: { ...args.flags, store: url, expires } });
  },
};

async function legacyIndex(ctx: CliContext, args: ParsedArgs, url: string): Promise<number> {
  const expiresFlags = flagList(args, 'expires');
  const keys = flagList(args, 'key');
  if (expiresFlags.length > 1 || keys.length > 1) {
    throw new UsageError(
      `${url} has no trust repository: the legacy index takes one --expires DURATION and one --key (or run apx trust init)`,
    );
  }
  const validity = parseDuration(expiresFlags[0] ?? '24h');
  info(
    ctx,
    `WARNING: ${url} has no trust repository; writing the legacy index.json (deprecated): set one up with apx trust init, then apx index runs apx trust publish`,
  );
  const signer = await openSigner(ctx, keys[0] ?? DEFAULT_PRIVATE_KEY);
  const { ARTIFACT_SUFFIX, parseVersionObjectName } = await import('@apx/storage');
  await withStore(ctx, url, async (store) => {
    const policies: Record<string, string> = {};
    for (const name of await store.list('')) {
      const object = parseVersionObjectName(name);
      if (object?.suffix !== ARTIFACT_SUFFIX) continue;
      const { policyId, version } = object.ref;
      const known = policies[policyId];
      if (known === undefined || semver.gt(version, known)) policies[policyId] = version;
    }
    let previous = 0;
    const existing = await store.get(INDEX_OBJECT, { maxBytes: 4 * 1024 * 1024 });
    if (existing) previous = PolicyIndex.parse(existing.toString('utf8'), `${store.url}/${INDEX_OBJECT}`).version;
    const now = new Date();
    const index = new PolicyIndex(previous + 1, now, new Date(now.getTime() + validity), policies);
    await putDocument(store, INDEX_OBJECT, await signDocument(ctx, signer, 'index', index.toJSON()));
    const listed = Object.entries(policies).map(([id, v]) => `${id}@${v}`);
    info(
      ctx,
      `✓ Indexed:   ${listed.length} polic${listed.length === 1 ? 'y' : 'ies'} (${listed.join(', ')}), version ${index.version}, expires ${index.expires.toISOString()}, in ${store.url}`,
    );
  });
  return 0;
}
