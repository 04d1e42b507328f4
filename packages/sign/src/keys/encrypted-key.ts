import { createPrivateKey, type KeyObject, randomBytes, scrypt } from 'node:crypto';
import { decodeFirstPem, decodeStdBase64, encodePem } from '@apx/core';
import { secretbox } from '@noble/ciphers/salsa';
import { SignError, SignErrorCode } from '../error.js';

/**
 * cosign's encrypted private key (cosign-formats.md §1): PEM around the compact JSON of
 * go-securesystemslib's `encrypted` package; scrypt derives a 32-byte key that opens a
 * NaCl secretbox (XSalsa20-Poly1305, tag first) holding a PKCS#8 private key.
 */
export const SIGSTORE_KEY_LABEL = 'ENCRYPTED SIGSTORE PRIVATE KEY';
export const COSIGN_KEY_LABEL = 'ENCRYPTED COSIGN PRIVATE KEY';

/** What cosign ≥ 2.2 writes. */
export const DEFAULT_SCRYPT_N = 65536;
/** go-securesystemslib's allow-list, checked before scrypt runs (a DoS guard). */
const ALLOWED_SCRYPT = new Set([32768, 65536, 131072]);
const SCRYPT_R = 8;
const SCRYPT_P = 1;
const SALT_BYTES = 32;
const NONCE_BYTES = 24;
const KEY_BYTES = 32;
/** 128·r·N is 128 MiB at N=2^17; Node's default maxmem (32 MiB) would refuse even N=2^15. */
const SCRYPT_MAXMEM = 256 * 1024 * 1024;

function deriveKey(password: string, salt: Buffer, N: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(Buffer.from(password, 'utf8'), salt, KEY_BYTES, { N, r: SCRYPT_R, p: SCRYPT_P, maxmem: SCRYPT_MAXMEM }, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

/**
 * The envelope JSON, byte-for-byte as Go's json.Marshal writes it: this key order, no
 * whitespace, padded standard base64.
 */
export async function encryptToEnvelope(plaintext: Uint8Array, password: string, N = DEFAULT_SCRYPT_N): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const nonce = randomBytes(NONCE_BYTES);
  const key = await deriveKey(password, salt, N);
  const sealed = secretbox(key, nonce).seal(plaintext);
  return JSON.stringify({
    kdf: { name: 'scrypt', params: { N, r: SCRYPT_R, p: SCRYPT_P }, salt: salt.toString('base64') },
    cipher: { name: 'nacl/secretbox', nonce: nonce.toString('base64') },
    ciphertext: Buffer.from(sealed).toString('base64'),
  });
}

/** The PEM file cosign generate-key-pair writes, from a PKCS#8 DER private key. */
export async function encryptPrivateKey(pkcs8Der: Uint8Array, password: string): Promise<string> {
  const envelope = await encryptToEnvelope(pkcs8Der, password);
  return encodePem(SIGSTORE_KEY_LABEL, Buffer.from(envelope, 'utf8'));
}

function malformed(source: string, why: string): SignError {
  return new SignError(SignErrorCode.PRIVATE_KEY_INVALID, `invalid private key in ${source}: ${why}`, {
    hint: 'pass a key written by apx generate-key-pair or cosign generate-key-pair',
  });
}

function field(obj: unknown, key: string): unknown {
  return typeof obj === 'object' && obj !== null ? (obj as Record<string, unknown>)[key] : undefined;
}

/** Opens a go-securesystemslib envelope; `source` names the file in messages. */
export async function decryptEnvelope(envelope: string, password: string, source: string): Promise<Buffer> {
  let json: unknown;
  try {
    json = JSON.parse(envelope);
  } catch {
    throw malformed(source, 'the encrypted body is not JSON');
  }
  const kdf = field(json, 'kdf');
  const params = field(kdf, 'params');
  const cipher = field(json, 'cipher');
  if (field(kdf, 'name') !== 'scrypt') throw malformed(source, `unsupported key derivation ${String(field(kdf, 'name'))}`);
  if (field(cipher, 'name') !== 'nacl/secretbox') throw malformed(source, `unsupported cipher ${String(field(cipher, 'name'))}`);
  const N = field(params, 'N');
  const r = field(params, 'r');
  const p = field(params, 'p');
  if (!(typeof N === 'number' && ALLOWED_SCRYPT.has(N) && r === SCRYPT_R && p === SCRYPT_P)) {
    throw new SignError(
      SignErrorCode.KDF_UNSUPPORTED,
      `unsupported scrypt parameters in ${source}: N=${String(N)}, r=${String(r)}, p=${String(p)}`,
      { hint: 'cosign and APX accept N of 32768, 65536 or 131072 with r=8, p=1; re-create the key' },
    );
  }
  const salt = decodeStdBase64(String(field(kdf, 'salt') ?? ''));
  const nonce = decodeStdBase64(String(field(cipher, 'nonce') ?? ''));
  const ciphertext = decodeStdBase64(String(field(json, 'ciphertext') ?? ''));
  if (!salt || salt.length === 0) throw malformed(source, 'salt is missing or not base64');
  if (!nonce || nonce.length !== NONCE_BYTES) throw malformed(source, 'nonce must be 24 bytes of base64');
  if (!ciphertext || ciphertext.length < 16) throw malformed(source, 'ciphertext is missing or too short');

  const key = await deriveKey(password, salt, N);
  try {
    return Buffer.from(secretbox(key, nonce).open(ciphertext));
  } catch {
    throw new SignError(SignErrorCode.DECRYPT_FAILED, `wrong password for ${source} (decrypt: encrypted: decryption failed)`, {
      hint: 'set COSIGN_PASSWORD to the password the key was created with (it may be empty)',
    });
  }
}

/**
 * Loads a cosign private key file: both PEM labels, the allowed scrypt parameters, and a
 * PKCS#8 plaintext only; a SEC1 plaintext is refused as cosign refuses it.
 */
export async function decryptPrivateKey(pemText: string, password: string, source: string): Promise<KeyObject> {
  const block = decodeFirstPem(pemText);
  if (!block) throw malformed(source, 'no PEM block found');
  if (block.label !== SIGSTORE_KEY_LABEL && block.label !== COSIGN_KEY_LABEL) {
    throw new SignError(
      SignErrorCode.PRIVATE_KEY_INVALID,
      `invalid private key in ${source}: PEM type "${block.label}" is not a cosign encrypted key`,
      { hint: `convert it first: apx import-key-pair --key ${source}` },
    );
  }
  const plaintext = await decryptEnvelope(block.der.toString('utf8'), password, source);
  try {
    return createPrivateKey({ key: plaintext, format: 'der', type: 'pkcs8' });
  } catch {
    let sec1 = false;
    try {
      createPrivateKey({ key: plaintext, format: 'der', type: 'sec1' });
      sec1 = true;
    } catch {
      // not SEC1 either: generic message below
    }
    throw new SignError(
      SignErrorCode.PRIVATE_KEY_INVALID,
      sec1
        ? `invalid private key in ${source}: parsing private key: x509: failed to parse private key (use ParseECPrivateKey instead for this key format)`
        : `invalid private key in ${source}: the decrypted key is not PKCS#8`,
      { hint: 'cosign keys hold PKCS#8; re-wrap the key with apx import-key-pair from its plain PEM' },
    );
  } finally {
    plaintext.fill(0);
  }
}
