import { createHash, createPublicKey } from 'node:crypto';
import { defaultDigestFor, PublicKey } from '@apx/core';
import { SignError, SignErrorCode } from '../error.js';
import type { SignatureResult, Signer } from '../signer/signer.js';

const ALGORITHM: Record<string, string> = {
  'ecdsa-p256': 'ECDSA_SHA_256',
  'ecdsa-p384': 'ECDSA_SHA_384',
  'ecdsa-p521': 'ECDSA_SHA_512',
  rsa: 'RSASSA_PKCS1_V1_5_SHA_256',
};

type Kms = typeof import('@aws-sdk/client-kms');

/** Loopback endpoints speak plain HTTP (local test servers); every other endpoint HTTPS, as cosign. */
function endpointUrl(endpoint: string): string {
  return /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?$/.test(endpoint) ? `http://${endpoint}` : `https://${endpoint}`;
}

function failed(keyRef: string, err: unknown): SignError {
  const name = (err as { name?: string }).name ?? 'Error';
  return new SignError(SignErrorCode.KMS_FAILED, `${keyRef}: AWS KMS refused: ${name}: ${(err as Error).message}`, {
    hint:
      name === 'AccessDeniedException'
        ? 'grant kms:Sign and kms:GetPublicKey on the key'
        : 'check the key id, region and credentials',
    cause: err,
  });
}

/**
 * A key in AWS KMS (or a KMS-compatible service at ENDPOINT): the private key never leaves
 * KMS; APX sends the digest (MessageType DIGEST) and gets a DER signature back. The AWS SDK
 * loads only when such a key is used.
 */
export class AwsKmsSigner implements Signer {
  readonly keyRef: string;
  private readonly client: InstanceType<Kms['KMSClient']>;
  private readonly kms: Kms;
  private readonly keyId: string;
  private readonly pub: PublicKey;

  private constructor(keyRef: string, kms: Kms, client: InstanceType<Kms['KMSClient']>, keyId: string, pub: PublicKey) {
    this.keyRef = keyRef;
    this.kms = kms;
    this.client = client;
    this.keyId = keyId;
    this.pub = pub;
  }

  static async open(
    keyRef: string,
    endpoint: string | undefined,
    keyId: string,
    region: string | undefined,
  ): Promise<AwsKmsSigner> {
    const kms = await import('@aws-sdk/client-kms');
    const client = new kms.KMSClient({
      ...(endpoint ? { endpoint: endpointUrl(endpoint) } : {}),
      ...(region ? { region } : {}),
      maxAttempts: 3,
    });
    try {
      const out = await client.send(new kms.GetPublicKeyCommand({ KeyId: keyId }));
      if (!out.PublicKey) throw new Error('no public key returned');
      const pub = PublicKey.fromKeyObject(createPublicKey({ key: Buffer.from(out.PublicKey), format: 'der', type: 'spki' }));
      return new AwsKmsSigner(keyRef, kms, client, keyId, pub);
    } catch (err) {
      throw failed(keyRef, err);
    }
  }

  async publicKey(): Promise<PublicKey> {
    return this.pub;
  }

  async sign(message: Uint8Array): Promise<SignatureResult> {
    const digestAlgorithm = defaultDigestFor(this.pub.algorithm);
    const algorithm = ALGORITHM[this.pub.algorithm];
    if (!digestAlgorithm || !algorithm) {
      throw new SignError(
        SignErrorCode.SIGNING_FAILED,
        `${this.keyRef}: AWS KMS keys of type ${this.pub.algorithm} are not supported`,
      );
    }
    try {
      const out = await this.client.send(
        new this.kms.SignCommand({
          KeyId: this.keyId,
          Message: createHash(digestAlgorithm).update(message).digest(),
          MessageType: 'DIGEST',
          SigningAlgorithm: algorithm as never,
        }),
      );
      if (!out.Signature) throw new Error('no signature returned');
      return { signature: Buffer.from(out.Signature), digestAlgorithm, publicKey: this.pub };
    } catch (err) {
      throw failed(this.keyRef, err);
    }
  }
}
