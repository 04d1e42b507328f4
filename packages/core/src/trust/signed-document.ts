import type { Keyring, KeyringEntry } from './keyring.js';

/**
 * The key of the keyring that signed a trust document (revocation list, policy index):
 * an active key whose detached signature over the exact bytes verifies; undefined if none.
 */
export function documentSigner(text: Buffer, signature: Buffer, keyring: Keyring): KeyringEntry | undefined {
  return keyring.entries.find((k) => {
    if (k.status !== 'active') return false;
    try {
      k.verifier.verify(text, signature);
      return true;
    } catch {
      return false;
    }
  });
}
