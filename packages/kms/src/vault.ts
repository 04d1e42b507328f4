import { createHash } from 'node:crypto';
import { defaultDigestFor, PublicKey } from '@apx/core';
import { KmsError, KmsErrorCode } from './error.js';
import type { KmsKey, KmsSignature } from './kms-key.js';

export interface VaultOptions {
  /** VAULT_ADDR (or BAO_ADDR), e.g. https://vault.example.com:8200. */
  address: string;
  /** VAULT_TOKEN (or BAO_TOKEN). Never logged. */
  token: string;
  /** TRANSIT_SECRET_ENGINE_PATH (default `transit`). */
  transitPath?: string;
  timeoutMs?: number;
}

const VAULT_HASH: Record<string, string> = { sha256: 'sha2-256', sha384: 'sha2-384', sha512: 'sha2-512' };

class VaultHttpError extends KmsError {
  readonly status: number;
  constructor(status: number, message: string, hint: string) {
    super(KmsErrorCode.KMS_FAILED, message, { hint });
    this.status = status;
  }
}

/** One call to the transit engine's HTTP API; refusals become one line with Vault's reason. */
async function call(
  options: VaultOptions,
  method: string,
  path: string,
  keyRef: string,
  body?: unknown,
): Promise<Record<string, unknown>> {
  const url = `${options.address.replace(/\/$/, '')}/v1/${options.transitPath ?? 'transit'}/${path}`;
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers: { 'X-Vault-Token': options.token, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
    });
  } catch (err) {
    throw new KmsError(
      KmsErrorCode.KMS_FAILED,
      `${keyRef}: cannot reach Vault at ${options.address}: ${(err as Error).message}`,
      {
        hint: 'check VAULT_ADDR and that Vault is reachable',
        cause: err,
      },
    );
  }
  const json = (await res.json().catch(() => ({}))) as { data?: Record<string, unknown>; errors?: string[] };
  if (!res.ok) {
    const why = json.errors?.join('; ') || res.statusText;
    throw new VaultHttpError(
      res.status,
      `${keyRef}: Vault answered ${res.status}: ${why}`,
      res.status === 403
        ? 'check VAULT_TOKEN and its policy on the transit key'
        : 'check the key name and TRANSIT_SECRET_ENGINE_PATH',
    );
  }
  return json.data ?? {};
}

/**
 * A key in HashiCorp Vault's (or OpenBao's) transit engine: the private key never leaves
 * Vault; APX sends the digest (prehashed) and gets an ASN.1 signature back, over Vault's HTTP
 * API. The newest version signs, as cosign; the public key is that version's.
 */
export class VaultKey implements KmsKey {
  readonly keyRef: string;
  readonly version: string;
  private readonly keyName: string;
  private readonly options: VaultOptions;
  private readonly pub: PublicKey;

  private constructor(keyName: string, version: string, options: VaultOptions, pub: PublicKey) {
    this.keyName = keyName;
    this.keyRef = `hashivault://${keyName}`;
    this.version = `${this.keyRef} version ${version}`;
    this.options = options;
    this.pub = pub;
  }

  static async open(keyName: string, options: VaultOptions): Promise<VaultKey> {
    const keyRef = `hashivault://${keyName}`;
    const data = await call(options, 'GET', `keys/${encodeURIComponent(keyName)}`, keyRef);
    const keys = data.keys as Record<string, { public_key?: string }> | undefined;
    const latest = String(data.latest_version ?? '');
    const pem = keys?.[latest]?.public_key;
    if (!pem) {
      throw new KmsError(KmsErrorCode.KEY_UNSUPPORTED, `${keyRef}: Vault key has no public key (type ${String(data.type)})`, {
        hint: 'use an asymmetric signing key (type ecdsa-p256, ecdsa-p384, ecdsa-p521 or ed25519)',
      });
    }
    return new VaultKey(keyName, latest, options, PublicKey.fromPem(pem, keyRef));
  }

  /**
   * `apx generate-key-pair --kms hashivault://KEY`: creates an ECDSA P-256 transit key. Vault
   * would answer success for an existing key and keep it, so an existing name is refused.
   */
  static async create(keyName: string, options: VaultOptions): Promise<VaultKey> {
    const keyRef = `hashivault://${keyName}`;
    const path = `keys/${encodeURIComponent(keyName)}`;
    const existing = await call(options, 'GET', path, keyRef).then(
      () => true,
      (err: unknown) => {
        if (err instanceof VaultHttpError && err.status === 404) return false;
        throw err;
      },
    );
    if (existing) {
      throw new KmsError(KmsErrorCode.KEY_EXISTS, `${keyRef}: the key already exists in Vault`, {
        hint: `sign with it (--key ${keyRef}), or choose another name`,
      });
    }
    await call(options, 'POST', path, keyRef, { type: 'ecdsa-p256' });
    return VaultKey.open(keyName, options);
  }

  async publicKey(): Promise<PublicKey> {
    return this.pub;
  }

  async sign(message: Uint8Array): Promise<KmsSignature> {
    const digestAlgorithm = defaultDigestFor(this.pub.algorithm);
    const body = digestAlgorithm
      ? {
          input: createHash(digestAlgorithm).update(message).digest('base64'),
          prehashed: true,
          hash_algorithm: VAULT_HASH[digestAlgorithm],
          marshaling_algorithm: 'asn1',
        }
      : { input: Buffer.from(message).toString('base64') };
    const data = await call(this.options, 'POST', `sign/${encodeURIComponent(this.keyName)}`, this.keyRef, body);
    const text = String(data.signature ?? '');
    const m = /^vault:v\d+:(.+)$/.exec(text);
    if (!m) throw new KmsError(KmsErrorCode.KMS_FAILED, `${this.keyRef}: Vault returned no signature`);
    return { signature: Buffer.from(m[1] as string, 'base64'), digestAlgorithm, publicKey: this.pub };
  }

  async close(): Promise<void> {}
}
