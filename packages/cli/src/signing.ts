import {
  isKeyless,
  KeylessSigner,
  PUBLIC_FULCIO_URL,
  PUBLIC_REKOR_URL,
  rekorWitness,
  SignError,
  SignErrorCode,
  type Signer,
  signingServicesFromConfig,
  TimestampWitness,
  type Witness,
} from '@apx/sign';
import { type FlagSpec, flagBool, flagString, type ParsedArgs, UsageError } from './command.js';
import { type CliContext, info } from './context.js';
import { readInput, readOptional } from './io.js';
import { DEFAULT_PRIVATE_KEY, openSigner } from './keyref.js';

/** The flags every signing command takes besides --key: keyless signing and trusted time (cosign's names). */
export const SIGNING_FLAGS: FlagSpec[] = [
  {
    name: 'keyless',
    type: 'boolean',
    description:
      "Sign without a key: an ephemeral key, a Fulcio certificate for your OIDC identity, a Rekor entry (cosign's default without --key; APX keeps keys/cosign.key as its default).",
  },
  {
    name: 'identity-token',
    type: 'string',
    value: 'TOKEN',
    description:
      "The OIDC identity token for keyless signing, or a file holding it (implies --keyless; default: SIGSTORE_ID_TOKEN, then GitHub Actions' ambient token).",
  },
  {
    name: 'fulcio-url',
    type: 'string',
    value: 'URL',
    description: `Fulcio for keyless signing (default: ${PUBLIC_FULCIO_URL}).`,
  },
  { name: 'rekor-url', type: 'string', value: 'URL', description: `Rekor for keyless signing (default: ${PUBLIC_REKOR_URL}).` },
  {
    name: 'timestamp-server-url',
    type: 'string',
    value: 'URL',
    description: 'An RFC 3161 timestamp authority: adds a trusted timestamp to the bundle (keyed or keyless).',
  },
  {
    name: 'signing-config',
    type: 'string',
    value: 'FILE',
    description:
      'A Sigstore signing config (JSON) naming Fulcio, Rekor and the TSA for keyless signing; the URL flags override it.',
  },
];

/** How a command signs: the signer, and what testifies to each signature. */
export interface Signing {
  signer: Signer;
  /** Witnesses for a message signature (sign-blob) or a DSSE envelope (sign, compile). */
  witnesses(kind: 'message' | 'dsse'): Witness[];
}

/** Whether the flags ask for keyless signing (--keyless, or an identity token given). */
export function wantsKeyless(args: ParsedArgs): boolean {
  return flagBool(args, 'keyless') || args.flags['identity-token'] !== undefined;
}

/**
 * The signer the flags select: the key (--key, default keys/cosign.key), or keyless signing
 * with an identity token. Keyless takes its token here, before any work, so a missing token is
 * one clear error before anything is compiled or written; the certificate comes at first signature.
 */
export async function openSigning(ctx: CliContext, args: ParsedArgs): Promise<Signing> {
  const tsaFlag = flagString(args, 'timestamp-server-url');
  if (!wantsKeyless(args)) {
    for (const name of ['fulcio-url', 'rekor-url', 'signing-config']) {
      if (args.flags[name] !== undefined) throw new UsageError(`--${name} is for keyless signing: add --keyless`);
    }
    const signer = await openSigner(ctx, flagString(args, 'key') ?? DEFAULT_PRIVATE_KEY);
    const witnesses = tsaFlag ? [new TimestampWitness({ url: tsaFlag })] : [];
    return { signer, witnesses: () => witnesses };
  }
  if (args.flags.key !== undefined) throw new UsageError('--key and --keyless (or --identity-token) exclude each other');
  const configPath = flagString(args, 'signing-config');
  const config = configPath
    ? signingServicesFromConfig(
        (await readInput(ctx, configPath, 'signing config', 'pass a Sigstore signing config JSON file')).toString('utf8'),
        configPath,
      )
    : {};
  const fulcioUrl = flagString(args, 'fulcio-url') ?? config.fulcioUrl ?? PUBLIC_FULCIO_URL;
  const rekorFlag = flagString(args, 'rekor-url');
  const rekorUrl = rekorFlag ?? config.rekorUrl ?? PUBLIC_REKOR_URL;
  const rekorApiVersion = rekorFlag ? 1 : (config.rekorApiVersion ?? 1);
  const tsaUrl = tsaFlag ?? config.tsaUrl;
  const token = await identityToken(ctx, args);
  const signer = new KeylessSigner({ fulcioUrl, identityToken: async () => token });
  return {
    signer,
    witnesses: (kind) => [
      rekorWitness(rekorUrl, { majorApiVersion: rekorApiVersion, ...(kind === 'dsse' ? { entryType: 'dsse' as const } : {}) }),
      ...(tsaUrl ? [new TimestampWitness({ url: tsaUrl })] : []),
    ],
  };
}

const JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/**
 * The OIDC identity token, where cosign looks for it: --identity-token (the token, or a file
 * holding it), SIGSTORE_ID_TOKEN, then GitHub Actions' ambient token (audience "sigstore").
 */
async function identityToken(ctx: CliContext, args: ParsedArgs): Promise<string> {
  const flag = flagString(args, 'identity-token');
  if (flag !== undefined) {
    if (JWT.test(flag.trim())) return flag.trim();
    const file = await readOptional(ctx, flag, 'identity token file', 'pass the token itself, or a file holding it');
    if (file === undefined) {
      throw new SignError(
        SignErrorCode.IDENTITY_TOKEN_INVALID,
        'invalid identity token: --identity-token is neither a JWT nor a file',
        {
          hint: 'pass the OIDC ID token itself, or the path of a file holding it',
        },
      );
    }
    return file.toString('utf8').trim();
  }
  const fromEnv = ctx.env.SIGSTORE_ID_TOKEN?.trim();
  if (fromEnv) return fromEnv;
  const requestUrl = ctx.env.ACTIONS_ID_TOKEN_REQUEST_URL;
  const requestToken = ctx.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN;
  if (requestUrl && requestToken) return githubActionsToken(ctx, requestUrl, requestToken);
  throw new SignError(SignErrorCode.IDENTITY_TOKEN_MISSING, 'no identity token for keyless signing', {
    hint:
      requestUrl || ctx.env.GITHUB_ACTIONS === 'true'
        ? 'GitHub Actions gives one only to jobs with `permissions: id-token: write`; or pass --identity-token TOKEN or set SIGSTORE_ID_TOKEN'
        : 'pass --identity-token TOKEN, set SIGSTORE_ID_TOKEN, or run in GitHub Actions with `permissions: id-token: write`',
  });
}

/** GitHub Actions' OIDC token for audience "sigstore" (what cosign and sigstore-js ask for). */
async function githubActionsToken(ctx: CliContext, requestUrl: string, requestToken: string): Promise<string> {
  const fail = (why: string, cause?: unknown) =>
    new SignError(SignErrorCode.IDENTITY_TOKEN_MISSING, `GitHub Actions gave no identity token: ${why}`, {
      hint: 'the job needs `permissions: id-token: write`; or pass --identity-token TOKEN or set SIGSTORE_ID_TOKEN',
      ...(cause === undefined ? {} : { cause }),
    });
  let url: URL;
  try {
    url = new URL(requestUrl);
  } catch (err) {
    throw fail('ACTIONS_ID_TOKEN_REQUEST_URL is not a URL', err);
  }
  url.searchParams.set('audience', 'sigstore');
  let body: { value?: unknown };
  try {
    const res = await fetch(url, {
      headers: { Authorization: `Bearer ${requestToken}`, Accept: 'application/json' },
      signal: AbortSignal.timeout(15_000),
    });
    if (!res.ok) throw fail(`HTTP ${res.status} from the token endpoint`);
    body = (await res.json()) as { value?: unknown };
  } catch (err) {
    if (err instanceof SignError) throw err;
    throw fail(
      (err as Error)?.name === 'TimeoutError'
        ? 'the token endpoint did not answer in 15 s'
        : String((err as Error)?.message ?? err),
      err,
    );
  }
  if (typeof body.value !== 'string' || body.value === '') throw fail('the answer holds no token');
  info(ctx, 'Using the GitHub Actions identity token');
  return body.value;
}

/** The lines a signing command prints about how it signed: the key id, or the identity; then the evidence. */
export async function describeSigning(
  ctx: CliContext,
  signing: Signing,
  signed: { bundleJson: string; publicKey: { keyId: string } },
): Promise<void> {
  if (isKeyless(signing.signer)) {
    const who = await signing.signer.identity();
    info(ctx, `Signed keylessly as ${who.subject} (issuer ${who.issuer})`);
  } else {
    info(ctx, `Signed with key id ${signed.publicKey.keyId}`);
  }
  describeEvidence(ctx, signed.bundleJson);
}

/** What witnesses added to a bundle: Rekor entries (cosign's "tlog entry created with index") and timestamps. */
export function describeEvidence(ctx: CliContext, bundleJson: string): void {
  const bundle = JSON.parse(bundleJson) as {
    verificationMaterial?: {
      tlogEntries?: Array<{ logIndex?: string }>;
      timestampVerificationData?: { rfc3161Timestamps?: unknown[] };
    };
  };
  for (const entry of bundle.verificationMaterial?.tlogEntries ?? [])
    info(ctx, `tlog entry created with index: ${entry.logIndex}`);
  const stamps = bundle.verificationMaterial?.timestampVerificationData?.rfc3161Timestamps?.length ?? 0;
  if (stamps > 0)
    info(ctx, `Timestamped by a timestamp authority (RFC 3161): ${stamps} timestamp${stamps === 1 ? '' : 's'} in the bundle`);
}
