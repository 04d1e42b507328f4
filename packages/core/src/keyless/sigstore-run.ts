// Runs @sigstore/verify on a bundle and turns its failures into APX's closed codes, one
// message per failure class. Certificate chains, SCTs, Rekor SETs, inclusion proofs,
// checkpoints and RFC 3161 tokens are all checked by @sigstore/verify; this file only
// prepares its inputs and names its verdicts.
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import type { Bundle } from '@sigstore/bundle';
import type { KeyFinderFunc, SignedEntity, Signer, TrustMaterial } from '@sigstore/verify';
import type { DigestAlgorithm } from '../digest.js';
import { CoreErrorCode, VerificationError } from '../error.js';
import type { VerifiedTime } from '../keys/validity.js';
import { verifyPrehashed } from '../signature/prehashed.js';
import type { SigstoreTrustedRoot } from './trusted-root.js';

const lazyRequire = createRequire(import.meta.url);
type SigstoreVerify = typeof import('@sigstore/verify');

export interface SigstoreRunOptions {
  trustedRoot: SigstoreTrustedRoot;
  /** For bundles signed with a key: finds it by hint and judges it at each verified timestamp. */
  keys?: KeyFinderFunc;
  tlogThreshold: number;
  ctlogThreshold: number;
  timestampThreshold: number;
}

/** A time the bundle proves, verified: an RFC 3161 signing time, or a Rekor integrated time under a SET. */
export type TrustedTime = VerifiedTime;

export interface SigstoreRunResult {
  signer: Signer;
  trustedTimes: TrustedTime[];
}

const BEGINNING = new Date(0);
const END = new Date(8640000000000000);

/** The same trust material with every entry's validity window opened, to tell a window failure from others. */
function widened(trust: TrustMaterial): TrustMaterial {
  const open = { start: BEGINNING, end: END };
  return {
    ...trust,
    certificateAuthorities: trust.certificateAuthorities.map((a) => ({ ...a, validFor: open })),
    timestampAuthorities: trust.timestampAuthorities.map((a) => ({ ...a, validFor: open })),
    tlogs: trust.tlogs.map((t) => ({ ...t, validFor: open })),
    ctlogs: trust.ctlogs.map((t) => ({ ...t, validFor: open })),
  };
}

interface Classified {
  code: CoreErrorCode;
  message: string;
  hint: string;
  /** Which trust-root entry kind the check used, for a window failure. */
  entry?: string;
}

const ROOT_HINT = 'check that the trusted root is the one of the Sigstore instance that made the bundle';

function classify(err: unknown, entity: SignedEntity): Classified {
  const e = err as { code?: unknown; message?: unknown; cause?: { message?: unknown } };
  const code = typeof e.code === 'string' ? e.code : '';
  const message = typeof e.message === 'string' ? e.message : String(err);
  const cause = typeof e.cause?.message === 'string' ? e.cause.message : '';
  switch (code) {
    case 'TIMESTAMP_ERROR':
      if (/^expected \d+ timestamps/.test(message)) {
        return {
          code: CoreErrorCode.TIMESTAMP_INVALID,
          message: `no trusted time: the bundle has no verifiable timestamp (${message}); it needs a Rekor signed entry timestamp or an RFC 3161 timestamp`,
          hint: 'a Rekor v2 entry carries no time: sign with a timestamp authority (--timestamp-server-url)',
        };
      }
      return {
        code: CoreErrorCode.TIMESTAMP_INVALID,
        message: `timestamp invalid: the RFC 3161 timestamp does not verify against the trusted root's timestamp authorities (${message})`,
        hint: ROOT_HINT,
        entry: 'timestamp authority',
      };
    case 'CERTIFICATE_ERROR':
      if (/SCTs, got 0/.test(message)) {
        return {
          code: CoreErrorCode.SCT_INVALID,
          message: 'certificate has no SCT: no signed certificate timestamp from a certificate transparency log',
          hint: 'Fulcio embeds an SCT in every certificate it issues; this certificate was not issued by a trusted Fulcio',
        };
      }
      if (/SCT/.test(message)) {
        return {
          code: CoreErrorCode.SCT_INVALID,
          message: `certificate SCT invalid: its signed certificate timestamp does not verify with a CT log of the trusted root (${message})`,
          hint: ROOT_HINT,
          entry: 'CT log key',
        };
      }
      if (/expired/.test(cause)) {
        return {
          code: CoreErrorCode.CERTIFICATE_EXPIRED,
          message: `certificate expired: the signing certificate (or its chain) was not valid at the signature's trusted time ${times(entity)}`,
          hint: 'a Fulcio certificate is valid for minutes: the signature must be logged or timestamped while it is valid',
        };
      }
      return {
        code: CoreErrorCode.CERTIFICATE_UNTRUSTED,
        message: `certificate chain untrusted: the signing certificate does not chain to a certificate authority of the trusted root${cause ? ` (${cause})` : ''}`,
        hint: ROOT_HINT,
        entry: 'certificate authority',
      };
    case 'TLOG_ERROR':
    case 'TLOG_INCLUSION_PROOF_ERROR':
    case 'TLOG_INCLUSION_PROMISE_ERROR':
    case 'TLOG_MISSING_INCLUSION_ERROR':
    case 'TLOG_BODY_ERROR':
      return {
        code: CoreErrorCode.TLOG_INVALID,
        message: /^expected \d+ tlog entries/.test(message)
          ? `transparency log entry missing: ${message}`
          : `transparency log entry invalid: ${message}`,
        hint:
          code === 'TLOG_BODY_ERROR' ? 'the log entry records another signature or artifact than the bundle carries' : ROOT_HINT,
        entry: 'Rekor log key',
      };
    case 'SIGNATURE_ERROR':
      return {
        code: CoreErrorCode.SIGNATURE_INVALID,
        message: `signature verification failed: ${message}`,
        hint: 'the artifact or the bundle was modified after signing',
      };
    case 'PUBLIC_KEY_ERROR':
      return {
        code: CoreErrorCode.KEY_OUTSIDE_VALIDITY,
        message: `signing key refused: ${message}`,
        hint: 'the key was not trusted at the time the bundle proves',
      };
    default:
      return {
        code: CoreErrorCode.BUNDLE_INVALID,
        message: `invalid bundle: ${message}`,
        hint: 'pass the .sigstore.json bundle written by the signer',
      };
  }
}

function trustedTimesOf(entity: SignedEntity): SigstoreRunResult['trustedTimes'] {
  const out: SigstoreRunResult['trustedTimes'] = [];
  for (const t of entity.timestamps) {
    if (t.$case === 'timestamp-authority') out.push({ time: t.timestamp.signingTime, source: 'timestamp-authority' });
    else if (t.tlogEntry.inclusionPromise) {
      out.push({ time: new Date(Number(t.tlogEntry.integratedTime) * 1000), source: 'transparency-log' });
    }
  }
  return out;
}

function times(entity: SignedEntity): string {
  const list = trustedTimesOf(entity).map((t) => t.time.toISOString());
  return list.length ? list.join(', ') : '(none)';
}

/**
 * Builds the entity @sigstore/verify checks from a bundle and (for message signatures) the
 * artifact. A DSSE envelope logged as a `hashedrekord` entry (what Rekor v2 clients write)
 * records the digest of what was signed, SHA-256(PAE(type, payload)); @sigstore/verify 3.x
 * compares that digest with SHA-256(payload) only (fixed in its 4.1 line, which drops Node 20),
 * so for such entries the PAE digest is accepted too. Either binds the envelope: the signature
 * is verified over PAE, and the log signed the entry.
 */
export function toEntity(bundle: Bundle, artifact: Buffer | undefined): SignedEntity {
  const { toSignedEntity } = lazyRequire('@sigstore/verify') as SigstoreVerify;
  const entity = toSignedEntity(bundle, artifact);
  if (bundle.content.$case !== 'dsseEnvelope') return entity;
  if (!bundle.verificationMaterial.tlogEntries.some((e) => e.kindVersion?.kind === 'hashedrekord')) return entity;
  const { dsse } = lazyRequire('@sigstore/core') as typeof import('@sigstore/core');
  const envelope = bundle.content.dsseEnvelope;
  const paeDigest = createHash('sha256').update(dsse.preAuthEncoding(envelope.payloadType, envelope.payload)).digest();
  return withSignatureChecks(entity, {
    compareDigest: (original) => (d) => original(d) || paeDigest.equals(d),
  });
}

type SignatureContent = SignedEntity['signature'];

/**
 * The entity with some of its signature checks replaced; each replacement is given the
 * original check. The other checks are the entity's own.
 */
function withSignatureChecks(
  entity: SignedEntity,
  replace: {
    compareDigest?: (original: SignatureContent['compareDigest']) => SignatureContent['compareDigest'];
    verifySignature?: (original: SignatureContent['verifySignature']) => SignatureContent['verifySignature'];
  },
): SignedEntity {
  const content = entity.signature;
  const compareDigest: SignatureContent['compareDigest'] = (d) => content.compareDigest(d);
  const verifySignature: SignatureContent['verifySignature'] = (key) => content.verifySignature(key);
  return {
    ...entity,
    signature: {
      signature: content.signature,
      compareSignature: (sig) => content.compareSignature(sig),
      compareDigest: replace.compareDigest ? replace.compareDigest(compareDigest) : compareDigest,
      verifySignature: replace.verifySignature ? replace.verifySignature(verifySignature) : verifySignature,
    },
  };
}

/**
 * The entity of a message-signature bundle verified from the artifact's digest alone: its
 * signature is checked over the digest (the bundle's messageDigest was already compared
 * with the digest given). Everything else is @sigstore/verify's as usual.
 */
export function withDigestSignature(entity: SignedEntity, algorithm: DigestAlgorithm, messageDigest: Buffer): SignedEntity {
  const signature = entity.signature.signature;
  return withSignatureChecks(entity, {
    verifySignature: () => (key) => verifyPrehashed(key, algorithm, messageDigest, signature) === 'valid',
  });
}

/**
 * Verifies the entity with @sigstore/verify against the trusted root. When it fails, the
 * same check is run once more with every trust-root entry's validity window opened: if it
 * then passes, the failure was an entry used outside its window, reported as such.
 */
export function runSigstore(entity: SignedEntity, options: SigstoreRunOptions): SigstoreRunResult {
  const { toTrustMaterial, Verifier } = lazyRequire('@sigstore/verify') as SigstoreVerify;
  const trust = toTrustMaterial(options.trustedRoot.root, options.keys ?? {});
  const thresholds = {
    tlogThreshold: options.tlogThreshold,
    ctlogThreshold: options.ctlogThreshold,
    timestampThreshold: options.timestampThreshold,
  };
  try {
    const signer = new Verifier(trust, thresholds).verify(entity);
    return { signer, trustedTimes: trustedTimesOf(entity) };
  } catch (err) {
    if (err instanceof VerificationError) throw err;
    const c = classify(err, entity);
    if (c.entry !== undefined) {
      let passesWidened = false;
      try {
        new Verifier(widened(trust), thresholds).verify(entity);
        passesWidened = true;
      } catch {
        // not a window failure: report the first verdict
      }
      if (passesWidened) {
        throw new VerificationError(
          CoreErrorCode.TRUSTED_ROOT_ENTRY_OUTSIDE_VALIDITY,
          `trusted root entry outside its validity window: the ${c.entry} of ${options.trustedRoot.source} that the bundle needs was not valid at the bundle's time ${times(entity)}`,
          {
            hint: 'an entry is trusted only within its validFor window; the bundle was made before it started or after it ended',
            cause: err,
          },
        );
      }
    }
    throw new VerificationError(c.code, c.message, { hint: c.hint, cause: err });
  }
}
