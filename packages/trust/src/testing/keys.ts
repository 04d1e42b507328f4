// Throwaway signers for tests: fresh keys in memory, never written anywhere.

import { generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { PublicKey } from '@apx/core';
import type { MetadataSigner } from '../keys.js';

export interface TestSigner extends MetadataSigner {
  readonly key: PublicKey;
  readonly privateKey: KeyObject;
}

/** A signer over a new ECDSA P-256 (default) or Ed25519 key pair. */
export function testSigner(name: string, type: 'ec' | 'ed25519' = 'ec'): TestSigner {
  const pair = type === 'ec' ? generateKeyPairSync('ec', { namedCurve: 'prime256v1' }) : generateKeyPairSync('ed25519');
  const key = PublicKey.fromKeyObject(pair.publicKey);
  return {
    keyRef: `test:${name}`,
    key,
    privateKey: pair.privateKey,
    publicKey: async () => key,
    // ECDSA: SHA-256, DER (cosign's encoding); Ed25519 signs the message itself.
    sign: async (message) => ({ signature: sign(type === 'ec' ? 'sha256' : null, message, pair.privateKey) }),
  };
}
