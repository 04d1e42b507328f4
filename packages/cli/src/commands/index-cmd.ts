import { PolicyIndex } from '@apx/core';
import semver from 'semver';
import { type CommandSpec, flagString, UsageError } from '../command.js';
import { info } from '../context.js';
import { DEFAULT_PRIVATE_KEY, openSigner } from '../keyref.js';
import { putDocument, signDocument, withStore } from '../trust-document.js';

export const INDEX_OBJECT = 'index.json';
const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

function parseDuration(text: string): number {
  const m = /^(\d+)([smhd])$/.exec(text);
  if (!m) throw new UsageError(`--expires ${text} is not a duration like 30m, 24h or 7d`);
  return Number(m[1]) * (UNITS[m[2] as string] as number);
}

export const indexCommand: CommandSpec = {
  name: 'index',
  summary: 'Publish a signed, expiring index of the current version of every policy in a store (freshness).',
  usage: '--store URL [--expires DURATION] [--key KEY]',
  details: `Lists the store, takes the highest version of each policy, and writes index.json (with a
version one above the store's current index, the issue and expiry times) and its signature
index.json.sig into the store. Workers with APX_INDEX load exactly the version the index names;
once the index expires they refuse new loads, keep serving for APX_INDEX_GRACE, then stop:
someone who can only freeze the store cannot keep workers on old versions for ever.
Publish a new index on a schedule shorter than --expires.`,
  flags: [
    { name: 'store', type: 'string', value: 'URL', description: 'The artifact store (directory, gs://, s3://; required).' },
    {
      name: 'expires',
      type: 'string',
      value: 'DURATION',
      description: 'How long the index is valid: 30m, 24h, 7d (default: 24h).',
    },
    {
      name: 'key',
      type: 'string',
      value: 'KEY',
      description: `The private key that signs the index (default: ${DEFAULT_PRIVATE_KEY}).`,
    },
  ],
  positionals: { min: 0, max: 0, names: '' },
  async run(ctx, args) {
    const url = flagString(args, 'store');
    if (!url) throw new UsageError('--store is required');
    const validity = parseDuration(flagString(args, 'expires') ?? '24h');
    const signer = await openSigner(ctx, flagString(args, 'key') ?? DEFAULT_PRIVATE_KEY);
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
  },
};
