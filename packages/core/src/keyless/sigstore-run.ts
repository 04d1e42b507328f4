// Runs @sigstore/verify on a bundle and turns its failures into APX's closed codes, one
// message per failure class. Certificate chains, SCTs, Rekor SETs, inclusion proofs,
// checkpoints and RFC 3161 tokens are all checked by @sigstore/verify; this file only
// prepares its inputs and names its verdicts.
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { isDeepStrictEqual } from 'node:util';
import type { Bundle } from '@sigstore/bundle';
import type { KeyFinderFunc, SignedEntity, Signer, TrustMaterial } from '@sigstore/verify';
import type { DigestAlgorithm } from '../digest.js';
import { CoreErrorCode, VerificationError } from '../error.js';
import type { VerifiedTime } from '../keys/validity.js';
import { verifyPrehashed } from '../signature/prehashed.js';
import { withCheckpointChecked } from './checkpoint.js';
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
  /** When the bundle proves no time at all: the time a checkpoint's log key is judged at (default: now). */
  now?: Date;
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
  let signed: SignedEntity;
  try {
    signed = toSignedEntity(bundle, artifact);
  } catch (err) {
    throw new VerificationError(
      CoreErrorCode.BUNDLE_INVALID,
      `invalid bundle: ${err instanceof Error ? err.message : String(err)}`,
      { hint: 'pass the .sigstore.json bundle written by the signer', cause: err },
    );
  }
  const entity = withEntries(withV01InclusionProofsChecked(withoutRepeatedEntries(signed)), withCheckpointChecked);
  if (bundle.content.$case !== 'dsseEnvelope') return entity;
  if (!bundle.verificationMaterial.tlogEntries.some((e) => e.kindVersion?.kind === 'hashedrekord')) return entity;
  const { dsse } = lazyRequire('@sigstore/core') as typeof import('@sigstore/core');
  const envelope = bundle.content.dsseEnvelope;
  const paeDigest = createHash('sha256').update(dsse.preAuthEncoding(envelope.payloadType, envelope.payload)).digest();
  return withSignatureChecks(entity, {
    compareDigest: (original) => (d) => original(d) || paeDigest.equals(d),
  });
}

/**
 * The entity with each transparency-log entry once: a bundle that carries the same entry
 * twice proves nothing more than with it once, so a copy must not count again toward a
 * threshold (nor add its integrated time a second time). Copies are dropped before
 * verification; entries that differ are all verified, and counted by log position
 * (runSigstore).
 */
function withoutRepeatedEntries(entity: SignedEntity): SignedEntity {
  const kept: SignedEntity['tlogEntries'] = [];
  for (const entry of entity.tlogEntries) {
    if (!kept.some((k) => isDeepStrictEqual(k, entry))) kept.push(entry);
  }
  if (kept.length === entity.tlogEntries.length) return entity;
  const timestamps = entity.timestamps.filter((t) => t.$case !== 'transparency-log' || kept.includes(t.tlogEntry));
  return { ...entity, tlogEntries: kept, timestamps };
}

type TlogEntry = SignedEntity['tlogEntries'][number];
type MerkleModule = {
  verifyMerkleInclusion(entry: TlogEntry, checkpoint: { logSize: bigint; logHash: Buffer }): void;
};

/**
 * Bundles v0.1 (2023 clients) carry an inclusion proof without a signed checkpoint; their
 * entry is trusted through its signed entry timestamp (SET). @sigstore/verify 3.x expects
 * a checkpoint in every inclusion proof and fails on such an entry without a verdict. The
 * proof is checked against its own root hash with @sigstore/verify's Merkle check (a
 * tampered proof is refused, as other clients do), then the entry is verified through its
 * SET alone. Without a SET, an entry without a checkpoint proves nothing and is refused.
 * (Bundles v0.2+ must carry a checkpoint: @sigstore/bundle refuses them without one.)
 */
function withV01InclusionProofsChecked(entity: SignedEntity): SignedEntity {
  const unsigned = (e: TlogEntry) => e.inclusionProof !== undefined && e.inclusionProof.checkpoint === undefined;
  if (!entity.tlogEntries.some(unsigned)) return entity;
  let merkle: MerkleModule;
  try {
    merkle = lazyRequire('@sigstore/verify/dist/tlog/merkle') as MerkleModule;
  } catch (err) {
    throw new VerificationError(
      CoreErrorCode.TLOG_INVALID,
      'transparency log entry not checked: the inclusion proof of a bundle v0.1 cannot be checked with this @sigstore/verify',
      { hint: 'reinstall APX with its locked dependencies', cause: err },
    );
  }
  const replaced = new Map<TlogEntry, TlogEntry>();
  for (const entry of entity.tlogEntries.filter(unsigned)) {
    const proof = entry.inclusionProof as NonNullable<TlogEntry['inclusionProof']>;
    if (entry.inclusionPromise === undefined) {
      throw new VerificationError(
        CoreErrorCode.TLOG_INVALID,
        'transparency log entry invalid: its inclusion proof has no signed checkpoint and the entry has no signed entry timestamp',
        { hint: 'the log entry must be signed by the log: a checkpoint (bundle v0.2+) or a SET' },
      );
    }
    try {
      merkle.verifyMerkleInclusion(entry, { logSize: BigInt(proof.treeSize), logHash: proof.rootHash });
    } catch (err) {
      throw new VerificationError(
        CoreErrorCode.TLOG_INVALID,
        `transparency log entry invalid: ${err instanceof Error ? err.message : String(err)}`,
        { hint: ROOT_HINT, cause: err },
      );
    }
    const { inclusionProof: _proof, ...rest } = entry;
    replaced.set(entry, rest as TlogEntry);
  }
  return withEntries(entity, (e) => replaced.get(e) ?? e);
}

/** The entity with each log entry replaced by `swap(entry)`, in its list and in its timestamps. */
function withEntries(entity: SignedEntity, swap: (entry: TlogEntry) => TlogEntry): SignedEntity {
  const swapped = new Map(entity.tlogEntries.map((e) => [e, swap(e)]));
  const get = (e: TlogEntry) => swapped.get(e) ?? swap(e);
  return {
    ...entity,
    tlogEntries: entity.tlogEntries.map(get),
    timestamps: entity.timestamps.map((t) => (t.$case === 'transparency-log' ? { ...t, tlogEntry: get(t.tlogEntry) } : t)),
  };
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
    checkDistinctLogPositions(entity, options.tlogThreshold);
    const trustedTimes = trustedTimesOf(entity);
    checkCheckpointKeysInWindow(entity, trust, trustedTimes, options);
    return { signer, trustedTimes };
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

/**
 * A log entry proven by an inclusion proof alone (Rekor v2; no SET, so no integrated time)
 * is trusted through its checkpoint, whose signature @sigstore/verify checks with any log
 * key of the trusted root that matches its hint, whatever the entry's logId and the key's
 * validity window. Here the checkpoint is checked again, by @sigstore/verify, against only
 * the key of the log the entry names (its logId), and only if that key is valid at each
 * verified time (RFC 3161 timestamps, integrated times under a SET), or at `now` when the
 * bundle proves no time. A SET is already checked against the named log's keys valid at
 * its integrated time.
 */
function checkCheckpointKeysInWindow(
  entity: SignedEntity,
  trust: TrustMaterial,
  trustedTimes: TrustedTime[],
  options: SigstoreRunOptions,
): void {
  const proofOnly = entity.tlogEntries.filter((e) => e.inclusionPromise === undefined);
  if (proofOnly.length === 0) return;
  const { Verifier } = lazyRequire('@sigstore/verify') as SigstoreVerify;
  const times = trustedTimes.length > 0 ? trustedTimes.map((t) => t.time) : [options.now ?? new Date()];
  for (const entry of proofOnly) {
    const named = trust.tlogs.filter((t) => t.logID.equals(entry.logId.keyId));
    if (named.length === 0) {
      throw new VerificationError(
        CoreErrorCode.TLOG_INVALID,
        `transparency log entry invalid: it names a log (logId ${entry.logId.keyId.toString('base64')}) that ${options.trustedRoot.source} does not list`,
        { hint: ROOT_HINT },
      );
    }
    for (const time of times) {
      const tlogs = named.filter((t) => t.validFor.start <= time && time <= t.validFor.end);
      try {
        new Verifier(
          { ...trust, tlogs },
          { tlogThreshold: 0, ctlogThreshold: options.ctlogThreshold, timestampThreshold: options.timestampThreshold },
        ).verify({ ...entity, tlogEntries: [entry] });
      } catch (err) {
        if (tlogs.length > 0) {
          throw new VerificationError(
            CoreErrorCode.TLOG_INVALID,
            'transparency log entry invalid: its checkpoint is not signed by the log the entry names (its logId)',
            { hint: ROOT_HINT, cause: err },
          );
        }
        throw new VerificationError(
          CoreErrorCode.TRUSTED_ROOT_ENTRY_OUTSIDE_VALIDITY,
          `trusted root entry outside its validity window: the Rekor log key of ${options.trustedRoot.source} that signed the log entry's checkpoint was not valid at ${trustedTimes.length > 0 ? "the bundle's time" : 'the time of verification (the bundle proves no time)'} ${time.toISOString()}`,
          {
            hint: 'a log key is trusted only within its validFor window; a Rekor v2 entry is dated by its RFC 3161 timestamp',
            cause: err,
          },
        );
      }
    }
  }
}

/**
 * @sigstore/verify counts every entry toward the log threshold; two entries at the same
 * position of the same log (e.g. one entry proven against two checkpoints) are one
 * witness, so the threshold is also checked against distinct log positions.
 */
function checkDistinctLogPositions(entity: SignedEntity, threshold: number): void {
  const positions = new Set(entity.tlogEntries.map((e) => `${e.logId.keyId.toString('hex')}:${e.logIndex}`));
  if (positions.size < threshold) {
    throw new VerificationError(
      CoreErrorCode.TLOG_INVALID,
      `transparency log entry missing: expected ${threshold} distinct log entries, got ${positions.size}`,
      { hint: 'the same log entry counts once, however often the bundle carries it' },
    );
  }
}
