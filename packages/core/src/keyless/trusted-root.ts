import { createRequire } from 'node:module';
import type { TrustedRoot } from '@sigstore/protobuf-specs';
import { CoreErrorCode, VerificationError } from '../error.js';

// @sigstore/protobuf-specs and @sigstore/verify are CommonJS and needed only when a bundle
// is verified against a trusted root: they load synchronously here, on first use.
const lazyRequire = createRequire(import.meta.url);
type ProtobufSpecs = typeof import('@sigstore/protobuf-specs');

/** The public-good Sigstore instance's TUF repository, whose trusted root @sigstore/tuf embeds. */
export const PUBLIC_GOOD_TUF_URL = 'https://tuf-repo-cdn.sigstore.dev';

/**
 * A Sigstore trusted root (trusted_root.json) checked for use: it parses as a TrustedRoot,
 * and every entry (certificate authority, timestamp authority, Rekor and CT log key) has a
 * start of validity. `source` names it in messages.
 */
export interface SigstoreTrustedRoot {
  readonly source: string;
  readonly root: TrustedRoot;
}

function invalid(source: string, why: string, cause?: unknown): VerificationError {
  return new VerificationError(CoreErrorCode.TRUSTED_ROOT_INVALID, `invalid trusted root ${source}: ${why}`, {
    hint: 'pass the trusted_root.json of the Sigstore instance that made the bundle (for the public-good instance, omit --trusted-root)',
    cause,
  });
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Reads a trusted root from its JSON (already parsed). @sigstore/verify treats an entry with
 * no `validFor.start` as valid since the beginning of time; APX refuses such a root instead:
 * an entry without a start cannot be judged against a signature's time, so it is no trust
 * anchor. Checked on the JSON, before protobuf defaults can hide a missing field.
 */
export function loadTrustedRoot(json: unknown, source = 'trusted_root.json'): SigstoreTrustedRoot {
  if (!isObject(json)) throw invalid(source, 'not a JSON object');
  if (typeof json.mediaType !== 'string' || !json.mediaType.startsWith('application/vnd.dev.sigstore.trustedroot')) {
    throw invalid(source, `mediaType ${JSON.stringify(json.mediaType)} is not a Sigstore trusted root`);
  }
  const lists: Array<[string, (e: Record<string, unknown>) => unknown, (e: Record<string, unknown>) => string]> = [
    ['certificateAuthorities', (e) => e.validFor, (e) => String(e.uri ?? '')],
    ['timestampAuthorities', (e) => e.validFor, (e) => String(e.uri ?? '')],
    ['tlogs', (e) => (isObject(e.publicKey) ? e.publicKey.validFor : undefined), (e) => String(e.baseUrl ?? '')],
    ['ctlogs', (e) => (isObject(e.publicKey) ? e.publicKey.validFor : undefined), (e) => String(e.baseUrl ?? '')],
  ];
  for (const [name, validFor, label] of lists) {
    const entries = json[name] ?? [];
    if (!Array.isArray(entries)) throw invalid(source, `${name} is not a list`);
    entries.forEach((entry, i) => {
      if (!isObject(entry)) throw invalid(source, `${name}[${i}] is not an object`);
      const window = validFor(entry);
      const start = isObject(window) ? window.start : undefined;
      const where = `${name}[${i}]${label(entry) ? ` (${label(entry)})` : ''}`;
      if (typeof start !== 'string' || Number.isNaN(Date.parse(start))) {
        throw invalid(source, `${where} has no start of validity (validFor.start): an entry without a start is not trusted`);
      }
      const end = isObject(window) ? window.end : undefined;
      if (end !== undefined && (typeof end !== 'string' || Number.isNaN(Date.parse(end)))) {
        throw invalid(source, `${where} has an invalid end of validity (validFor.end)`);
      }
    });
  }
  const { TrustedRoot } = lazyRequire('@sigstore/protobuf-specs') as ProtobufSpecs;
  let root: TrustedRoot;
  try {
    root = TrustedRoot.fromJSON(json);
  } catch (err) {
    throw invalid(source, err instanceof Error ? err.message : String(err), err);
  }
  return { source, root };
}

let publicGood: SigstoreTrustedRoot | undefined;

/**
 * The Sigstore public-good trusted root as embedded in @sigstore/tuf (its seeds.json, fixed
 * when APX was built and its dependencies installed). Read on first use only; nothing is
 * fetched: a worker never takes trust material from the network at run time.
 */
export function publicGoodTrustedRoot(): SigstoreTrustedRoot {
  if (publicGood) return publicGood;
  let seeds: Record<string, { targets?: Record<string, string> }>;
  try {
    seeds = lazyRequire('@sigstore/tuf/seeds.json');
  } catch (err) {
    throw invalid('(embedded public-good root)', 'the seeds of @sigstore/tuf cannot be read', err);
  }
  const encoded = seeds[PUBLIC_GOOD_TUF_URL]?.targets?.['trusted_root.json'];
  if (typeof encoded !== 'string') {
    throw invalid('(embedded public-good root)', `@sigstore/tuf embeds no trusted_root.json for ${PUBLIC_GOOD_TUF_URL}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(encoded, 'base64').toString('utf8'));
  } catch (err) {
    throw invalid('(embedded public-good root)', 'not JSON', err);
  }
  publicGood = loadTrustedRoot(json, `(Sigstore public-good root embedded in @sigstore/tuf)`);
  return publicGood;
}
