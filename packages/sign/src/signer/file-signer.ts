import { sign as cryptoSign, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { defaultDigestFor, PublicKey } from '@apx/core';
import { fileError } from '@apx/core/os-error';
import { SignError, SignErrorCode } from '../error.js';
import { decryptPrivateKey } from '../keys/encrypted-key.js';
import type { SignatureResult, Signer } from './signer.js';

/** Supplies the password of a key file; `confirm` asks for it twice (new keys). */
export type PasswordProvider = (request: { keyPath: string; confirm: boolean }) => Promise<string>;

/** A signer over a private key held in memory, decrypted from a cosign key file. */
export class FileSigner implements Signer {
  readonly keyRef: string;
  private readonly privateKey: KeyObject;
  private readonly pub: PublicKey;

  constructor(keyRef: string, privateKey: KeyObject) {
    this.keyRef = keyRef;
    this.privateKey = privateKey;
    this.pub = PublicKey.fromKeyObject(privateKey);
  }

  /**
   * Opens a cosign key file; the password is asked for only once the file is read.
   * `keyRef` is how the user named the file (relative paths stay relative in messages).
   */
  static async open(keyPath: string, password: PasswordProvider, keyRef: string = keyPath): Promise<FileSigner> {
    let pem: string;
    try {
      pem = await readFile(keyPath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new SignError(SignErrorCode.KEY_NOT_FOUND, `key file not found at ${keyRef}`, {
          hint: 'create one with: apx generate-key-pair (or pass --key PATH)',
        });
      }
      // A directory or a path through a file: say which, and that --key names the key file.
      const clear = fileError(err, { what: 'key file', path: keyRef, setting: '--key', expect: 'file', access: 'read' });
      if (clear) throw clear;
      throw new SignError(SignErrorCode.IO_FAILED, `cannot read key file ${keyRef}: ${(err as Error).message}`, { cause: err });
    }
    const key = await decryptPrivateKey(pem, await password({ keyPath: keyRef, confirm: false }), keyRef);
    return new FileSigner(keyRef, key);
  }

  async publicKey(): Promise<PublicKey> {
    return this.pub;
  }

  async sign(message: Uint8Array): Promise<SignatureResult> {
    // cosign ≥ 2.6: the hash follows the key; Ed25519 is pure (no transparency log upload).
    const digestAlgorithm = defaultDigestFor(this.pub.algorithm);
    const signature = cryptoSign(digestAlgorithm, message, this.privateKey);
    return { signature, digestAlgorithm, publicKey: this.pub };
  }
}
