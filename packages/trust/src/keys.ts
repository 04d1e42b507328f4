import { createHash } from 'node:crypto';
import { PublicKey } from '@apx/core';
import { canonicalize } from '@tufjs/canonical-json';
import { Key, Signature } from '@tufjs/models';

/** Any TUF metadata: its signed part and its signatures by key id. */
export interface Signable {
  signed: { toJSON(): object };
  signatures: Record<string, Signature>;
}

import { TrustError, TrustErrorCode } from './error.js';

/**
 * What signs metadata: any APX key custody (file, KMS, HSM). Structurally the Signer of
 * @apx/sign, so this package never loads signing code; the CLI passes its signers in.
 */
export interface MetadataSigner {
  /** Where the key lives, safe to log. */
  readonly keyRef: string;
  publicKey(): Promise<PublicKey>;
  sign(message: Uint8Array): Promise<{ signature: Buffer }>;
}

/**
 * The TUF key object for an APX public key. Only the key types that tuf-js verifies exactly
 * as APX's signers sign are accepted: ECDSA P-256 (SHA-256, DER signature) and Ed25519.
 * RSA (tuf-js verifies only RSASSA-PSS; cosign signs PKCS#1 v1.5) and P-384/P-521 (tuf-js
 * hashes them with SHA-256; cosign with SHA-384/512) would make metadata no client verifies.
 */
export function tufKey(publicKey: PublicKey): Key {
  let body: { keytype: string; scheme: string; keyval: { public: string } };
  if (publicKey.algorithm === 'ecdsa-p256') {
    const pem = publicKey.keyObject.export({ type: 'spki', format: 'pem' }).toString();
    body = { keytype: 'ecdsa', scheme: 'ecdsa-sha2-nistp256', keyval: { public: pem } };
  } else if (publicKey.algorithm === 'ed25519') {
    // TUF's ed25519 key value is the raw 32-byte key in hex: the SPKI DER's last 32 bytes.
    body = { keytype: 'ed25519', scheme: 'ed25519', keyval: { public: publicKey.spkiDer.subarray(-32).toString('hex') } };
  } else {
    throw new TrustError(TrustErrorCode.KEY_UNSUPPORTED, `unsupported trust repository key: ${publicKey.algorithm}`, {
      hint: 'TUF role keys must be ECDSA P-256 or Ed25519 (apx generate-key-pair makes P-256 keys)',
    });
  }
  // TUF spec 4.2: a key id is the SHA-256 of the canonical JSON of the key object.
  const keyID = createHash('sha256').update(canonicalize(body)).digest('hex');
  return new Key({ keyID, keyType: body.keytype, scheme: body.scheme, keyVal: body.keyval });
}

/** The APX public key behind a TUF key (for key ids in messages and duplicate checks). */
export function publicKeyOf(key: Key): PublicKey {
  const value = key.keyVal.public ?? '';
  if (key.keyType === 'ed25519' && /^[0-9a-f]{64}$/.test(value)) {
    const der = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), Buffer.from(value, 'hex')]);
    return PublicKey.fromPem(`-----BEGIN PUBLIC KEY-----\n${der.toString('base64')}\n-----END PUBLIC KEY-----\n`, 'TUF key');
  }
  return PublicKey.fromPem(value, `TUF key ${key.keyID.slice(0, 12)}`);
}

/** The bytes a TUF signature covers (TUF spec 4.2: canonical JSON of `signed`). */
export function signedBytes(metadata: { signed: { toJSON(): object } }): Buffer {
  return Buffer.from(canonicalize(metadata.signed.toJSON() as Parameters<typeof canonicalize>[0]));
}

/**
 * Adds one signature to metadata with an asynchronous signer (KMS and HSM sign remotely;
 * @tufjs/models' own sign() is synchronous). The signature is verified before it is kept,
 * so a signer that signs with another key than it reports fails here, not in a client.
 */
export async function addSignature(metadata: Signable, signer: MetadataSigner): Promise<string> {
  const key = tufKey(await signer.publicKey());
  const { signature } = await signer.sign(signedBytes(metadata));
  metadata.signatures[key.keyID] = new Signature({ keyID: key.keyID, sig: signature.toString('hex') });
  try {
    key.verifySignature(metadata as Parameters<Key['verifySignature']>[0]);
  } catch {
    delete metadata.signatures[key.keyID];
    throw new TrustError(TrustErrorCode.KEY_UNSUPPORTED, `the signature of ${signer.keyRef} does not verify as TUF metadata`, {
      hint: 'use an ECDSA P-256 or Ed25519 key',
    });
  }
  return key.keyID;
}

/**
 * Refuses a set of role keys in which two key ids carry the same public key: TUF counts a
 * threshold in distinct key ids, so one key listed twice would count twice.
 */
export function checkDistinctKeys(keys: Record<string, Key>, keyIDs: readonly string[], role: string): void {
  const seen = new Map<string, string>();
  for (const id of keyIDs) {
    const key = keys[id];
    if (!key) continue;
    // Compare the keys themselves (SPKI), not their spelling: PEM, hex and key type names vary.
    let material: string;
    try {
      material = publicKeyOf(key).keyId;
    } catch {
      continue; // a key no verifier can use adds nothing to a threshold
    }
    const other = seen.get(material);
    if (other !== undefined) {
      throw new TrustError(TrustErrorCode.DUPLICATE_KEY, `role ${role} lists one key twice (key ids ${other} and ${id})`, {
        hint: 'a threshold counts distinct keys; remove the duplicate key id from the role',
      });
    }
    seen.set(material, id);
  }
}
