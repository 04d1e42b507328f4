import { CoreErrorCode, VerificationError } from '../error.js';
import { PublicKey } from '../keys/public-key.js';
import { SignatureVerifier } from '../signature/verifier.js';
import { documentSigner } from './signed-document.js';

export const ENVIRONMENTS = ['dev', 'staging', 'production'] as const;
export type Environment = (typeof ENVIRONMENTS)[number];
export type KeyStatus = 'active' | 'retired' | 'compromised';

/** One trusted key and what it may do (docs/security-model.md, "Keyring"). */
export interface KeyringEntry {
  keyId: string;
  verifier: SignatureVerifier;
  environments: readonly Environment[];
  status: KeyStatus;
  validFrom: Date;
  /** End of validity: a retired key's signatures made after this are refused. */
  validUntil: Date | undefined;
  /** When the compromise began (informational: a compromised key verifies nothing). */
  compromisedAt: Date | undefined;
}

function invalid(source: string, why: string): VerificationError {
  return new VerificationError(CoreErrorCode.KEYRING_INVALID, `invalid keyring ${source}: ${why}`, {
    hint: 'see docs/security-model.md for the keyring format (apiVersion apx/v1, kind Keyring)',
  });
}

const short = (keyId: string) => keyId.slice(0, 12);

/**
 * The keys a worker trusts, each with the environments it may sign for, a status and a
 * validity window: a retired key keeps verifying what it signed while valid, a compromised
 * key verifies nothing, and a development key is refused in production. Pure: parsing and
 * decisions only; where the file comes from is the caller's business.
 */
export class Keyring {
  readonly version: number;
  readonly entries: readonly KeyringEntry[];

  private constructor(version: number, entries: KeyringEntry[]) {
    this.version = version;
    this.entries = entries;
  }

  /** One key, trusted for every environment: what a plain APX_PUBLIC_KEY means. */
  static single(publicKey: PublicKey, verifier = new SignatureVerifier(publicKey)): Keyring {
    return new Keyring(0, [
      {
        keyId: publicKey.keyId,
        verifier,
        environments: ENVIRONMENTS,
        status: 'active',
        validFrom: new Date(0),
        validUntil: undefined,
        compromisedAt: undefined,
      },
    ]);
  }

  /** Parses and checks a keyring document (JSON). */
  static parse(text: string, source = 'keyring'): Keyring {
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      throw invalid(source, 'not JSON');
    }
    const d = doc as { apiVersion?: unknown; kind?: unknown; version?: unknown; keys?: unknown };
    if (typeof doc !== 'object' || doc === null || d.apiVersion !== 'apx/v1' || d.kind !== 'Keyring') {
      throw invalid(source, 'expected apiVersion "apx/v1" and kind "Keyring"');
    }
    if (typeof d.version !== 'number' || !Number.isInteger(d.version) || d.version < 1)
      throw invalid(source, 'version must be a positive integer');
    if (!Array.isArray(d.keys) || d.keys.length === 0) throw invalid(source, 'keys must be a non-empty list');
    const seen = new Set<string>();
    const entries = d.keys.map((raw: unknown, i: number) => {
      const at = `keys[${i}]`;
      const k = raw as Record<string, unknown>;
      if (typeof raw !== 'object' || raw === null) throw invalid(source, `${at} is not an object`);
      for (const field of Object.keys(k)) {
        if (!['keyId', 'publicKey', 'environments', 'status', 'validFrom', 'validUntil', 'compromisedAt'].includes(field)) {
          throw invalid(source, `${at}.${field} is not a keyring field`);
        }
      }
      if (typeof k.publicKey !== 'string') throw invalid(source, `${at}.publicKey must be a PEM public key`);
      const publicKey = PublicKey.fromPem(k.publicKey, `${source} ${at}.publicKey`);
      if (k.keyId !== publicKey.keyId)
        throw invalid(source, `${at}.keyId does not match its public key (expected ${publicKey.keyId})`);
      if (seen.has(publicKey.keyId)) throw invalid(source, `${at} repeats key ${publicKey.keyId}`);
      seen.add(publicKey.keyId);
      const environments = k.environments;
      if (
        !Array.isArray(environments) ||
        environments.length === 0 ||
        !environments.every((e) => (ENVIRONMENTS as readonly unknown[]).includes(e))
      ) {
        throw invalid(source, `${at}.environments must list some of ${ENVIRONMENTS.join(', ')}`);
      }
      if (k.status !== 'active' && k.status !== 'retired' && k.status !== 'compromised') {
        throw invalid(source, `${at}.status must be active, retired or compromised`);
      }
      const time = (field: string, required: boolean): Date | undefined => {
        const v = k[field];
        if (v === undefined || v === null) {
          if (required) throw invalid(source, `${at}.${field} is required`);
          return undefined;
        }
        if (typeof v !== 'string' || Number.isNaN(Date.parse(v)))
          throw invalid(source, `${at}.${field} must be an RFC 3339 time`);
        return new Date(v);
      };
      return {
        keyId: publicKey.keyId,
        verifier: new SignatureVerifier(publicKey),
        environments: environments as Environment[],
        status: k.status,
        validFrom: time('validFrom', true) as Date,
        validUntil: time('validUntil', k.status === 'retired'),
        compromisedAt: time('compromisedAt', k.status === 'compromised'),
      } satisfies KeyringEntry;
    });
    return new Keyring(d.version, entries);
  }

  /** The keyring document, as apx keys rotate writes it. */
  toJSON(): Record<string, unknown> {
    return {
      apiVersion: 'apx/v1',
      kind: 'Keyring',
      version: this.version,
      keys: this.entries.map((e) => ({
        keyId: e.keyId,
        publicKey: e.verifier.publicKey.toPem(),
        environments: e.environments,
        status: e.status,
        validFrom: e.validFrom.toISOString(),
        ...(e.validUntil ? { validUntil: e.validUntil.toISOString() } : {}),
        ...(e.compromisedAt ? { compromisedAt: e.compromisedAt.toISOString() } : {}),
      })),
    };
  }

  /**
   * The next keyring of a rotation: `next` becomes the active key for `environments`, the
   * keys it replaces (active for those environments) retire now, so what they signed until
   * now keeps verifying and nothing they sign later does. Keys stay listed as history.
   */
  rotate(next: PublicKey, environments: readonly Environment[], now: Date): Keyring {
    const replaced = (e: KeyringEntry) => e.status === 'active' && e.environments.some((env) => environments.includes(env));
    const entries: KeyringEntry[] = this.entries.map((e) => (replaced(e) ? { ...e, status: 'retired', validUntil: now } : e));
    entries.push({
      keyId: next.keyId,
      verifier: new SignatureVerifier(next),
      environments,
      status: 'active',
      validFrom: now,
      validUntil: undefined,
      compromisedAt: undefined,
    });
    return new Keyring(this.version + 1, entries);
  }

  /**
   * Accepts the next keyring of a chain (like TUF's root rotation): it must be signed by an
   * active key of the keyring held now, and be newer. Returns it parsed.
   */
  static verifyNext(text: Buffer, signature: Buffer, held: Keyring, source: string): Keyring {
    if (!documentSigner(text, signature, held)) {
      throw invalid(source, 'it is not signed by an active key of the keyring in force');
    }
    const next = Keyring.parse(text.toString('utf8'), source);
    if (next.version < held.version)
      throw invalid(source, `version ${next.version} is older than the keyring in force (version ${held.version})`);
    return next;
  }

  /** The key a bundle's hint names (hex key id, or cosign's base64 form), else every key. */
  candidates(hint: string | undefined): readonly KeyringEntry[] {
    if (hint) {
      const hex = /^[0-9a-f]{64}$/.test(hint) ? hint : Buffer.from(hint, 'base64').toString('hex');
      const named = this.entries.filter((e) => e.keyId === hex);
      if (named.length > 0) return named;
    }
    return this.entries;
  }

  /**
   * May this key's signature admit an artifact for `environment`, signed at `signedAt` (the
   * binding statement's time, when there is one)? Throws the reason when not.
   */
  static admit(entry: KeyringEntry, environment: string, signedAt: Date | undefined, now: Date): void {
    const id = short(entry.keyId);
    if (entry.status === 'compromised') {
      throw new VerificationError(
        CoreErrorCode.KEY_COMPROMISED,
        `key ${id} is compromised (since ${entry.compromisedAt?.toISOString() ?? 'unknown'}): its signatures are no longer trusted`,
        { hint: 're-sign the artifact with an active key (apx keys rotate) and publish it again' },
      );
    }
    if (!(entry.environments as readonly string[]).includes(environment)) {
      throw new VerificationError(
        CoreErrorCode.KEY_ENVIRONMENT,
        `key ${id} may not sign for ${environment} (it signs for: ${entry.environments.join(', ')})`,
        { hint: `use different keys per environment: sign with a key the keyring allows in ${environment}` },
      );
    }
    const at = signedAt ?? (entry.status === 'retired' ? undefined : now);
    if (at === undefined) {
      throw new VerificationError(CoreErrorCode.KEY_NOT_VALID, `key ${id} is retired and the artifact carries no signing time`, {
        hint: 'sign with an active key, or with apx sign, whose statement records when it was signed',
      });
    }
    if (at < entry.validFrom || (entry.validUntil !== undefined && at > entry.validUntil)) {
      throw new VerificationError(
        CoreErrorCode.KEY_NOT_VALID,
        `signed at ${at.toISOString()}, outside the validity of key ${id} (${entry.validFrom.toISOString()} to ${entry.validUntil?.toISOString() ?? 'open'})`,
        { hint: 're-sign the artifact with an active key' },
      );
    }
  }
}
