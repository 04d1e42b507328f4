import { createPrivateKey, generateKeyPair as generateNodeKeyPair, type KeyObject } from 'node:crypto';
import { checkKey, decodeFirstPem, PublicKey } from '@apx/core';
import { SignError, SignErrorCode } from '../error.js';
import { encryptPrivateKey } from './encrypted-key.js';

/** A key pair ready to be written: cosign.key and cosign.pub contents. */
export interface EncodedKeyPair {
  /** PEM `ENCRYPTED SIGSTORE PRIVATE KEY`, for a 0600 file. */
  privatePem: string;
  /** PEM `PUBLIC KEY` (PKIX), for a 0644 file. */
  publicPem: string;
  publicKey: PublicKey;
}

/** Encrypts a private key the way cosign does: PKCS#8, scrypt N=65536, secretbox. */
export async function encodeKeyPair(privateKey: KeyObject, password: string): Promise<EncodedKeyPair> {
  const publicKey = PublicKey.fromKeyObject(privateKey);
  const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'der' });
  try {
    const privatePem = await encryptPrivateKey(pkcs8, password);
    return { privatePem, publicPem: publicKey.toPem(), publicKey };
  } finally {
    pkcs8.fill(0);
  }
}

/** `cosign generate-key-pair`: always ECDSA P-256, as cosign (it has no algorithm flag). */
export async function generateKeyPair(password: string): Promise<EncodedKeyPair> {
  const privateKey = await new Promise<KeyObject>((resolve, reject) =>
    generateNodeKeyPair('ec', { namedCurve: 'P-256' }, (err, _pub, priv) => (err ? reject(err) : resolve(priv))),
  );
  return encodeKeyPair(privateKey, password);
}

function refused(message: string, hint = 'import an ECDSA P-256/P-384/P-521, RSA 2048/3072/4096 or Ed25519 key'): SignError {
  return new SignError(SignErrorCode.KEY_IMPORT_REFUSED, message, { hint });
}

/**
 * Reads a plain private key as `cosign import-key-pair` does (cosign-formats.md §5): the
 * first PEM block, by type; then cosign's key policy, with cosign's reasons.
 */
export function parseImportableKey(pemText: string, source: string): KeyObject {
  const block = decodeFirstPem(pemText);
  if (!block) throw refused(`cannot import ${source}: invalid pem block`, 'pass a PEM file (-----BEGIN ... PRIVATE KEY-----)');
  let key: KeyObject;
  const parse = (type: 'pkcs1' | 'sec1' | 'pkcs8', what: string): KeyObject => {
    try {
      return createPrivateKey({ key: block.der, format: 'der', type });
    } catch (err) {
      throw new SignError(SignErrorCode.KEY_IMPORT_REFUSED, `cannot import ${source}: ${what}`, {
        hint: 'the PEM body is corrupted or not the key type its label says',
        cause: err,
      });
    }
  };
  switch (block.label) {
    case 'RSA PRIVATE KEY':
      key = parse('pkcs1', 'error parsing rsa private key');
      break;
    case 'EC PRIVATE KEY':
      key = parse('sec1', 'error parsing ecdsa private key');
      break;
    case 'PRIVATE KEY':
      key = parse('pkcs8', 'error parsing pkcs8 private key');
      if (!['rsa', 'ec', 'ed25519'].includes(key.asymmetricKeyType ?? '')) {
        throw refused(`cannot import ${source}: unexpected private key (${key.asymmetricKeyType ?? 'unknown'})`);
      }
      break;
    default:
      throw refused(
        `cannot import ${source}: unsupported private key (PEM type "${block.label}")`,
        'pass an unencrypted RSA PRIVATE KEY, EC PRIVATE KEY or PRIVATE KEY PEM',
      );
  }
  const check = checkKey(key);
  if (!check.ok) {
    if (check.family === 'ecdsa' && !check.reason.endsWith('not allowed')) {
      // Go cannot even parse curves it does not know (secp256k1): cosign's wording.
      throw refused(`cannot import ${source}: error parsing ecdsa private key: ${check.reason}`);
    }
    const family = check.family === 'other' ? 'key' : `${check.family} key`;
    throw refused(`cannot import ${source}: error validating ${family}: ${check.reason}`);
  }
  return key;
}
