import { generateKeyPairSync, type KeyObject, X509Certificate as NodeX509Certificate, sign } from 'node:crypto';
import { PublicKey } from '@apx/core';
import type { X509Certificate } from '@sigstore/core';
import type { Witness } from '@sigstore/sign';
import { SignError, SignErrorCode } from './error.js';
import type { SignatureResult, Signer } from './signer/signer.js';
import { sigstoreCore, sigstoreSign } from './sigstore-libs.js';
import { networkReason, TimestampWitness } from './timestamp.js';

/** Sigstore's public-good instances (cosign's defaults). */
export const PUBLIC_FULCIO_URL = 'https://fulcio.sigstore.dev';
export const PUBLIC_REKOR_URL = 'https://rekor.sigstore.dev';

/** Who a Fulcio certificate names: its SAN (email, URI) and the OIDC issuer that vouched for it. */
export interface SigningIdentity {
  subject: string;
  issuer: string;
}

export interface KeylessSignerOptions {
  fulcioUrl: string;
  /** Returns the OIDC identity token (called once, when the certificate is requested). */
  identityToken: () => Promise<string>;
  timeoutMs?: number;
}

const OID_ISSUER_V2 = '1.3.6.1.4.1.57264.1.8';
const OID_ISSUER_V1 = '1.3.6.1.4.1.57264.1.1';

/**
 * Keyless signing (cosign's default): an ephemeral P-256 key that never leaves memory, and a
 * short-lived Fulcio certificate binding its public key to the OIDC identity of the token.
 * The certificate is requested once, on first use, and every signature of the command is
 * made with the same key, so the `.sig`, the `.pem` and the bundle agree.
 */
export class KeylessSigner implements Signer {
  readonly keyRef: string;
  private readonly key: { privateKey: KeyObject; publicKey: KeyObject };
  private readonly options: KeylessSignerOptions;
  private cert: Promise<{ pem: string; der: Buffer; identity: SigningIdentity }> | undefined;

  constructor(options: KeylessSignerOptions) {
    this.options = options;
    this.keyRef = `keyless (${options.fulcioUrl})`;
    this.key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  }

  async publicKey(): Promise<PublicKey> {
    return PublicKey.fromKeyObject(this.key.publicKey);
  }

  async sign(message: Uint8Array): Promise<SignatureResult> {
    await this.certificate();
    return {
      signature: sign('sha256', message, this.key.privateKey),
      digestAlgorithm: 'sha256',
      publicKey: await this.publicKey(),
    };
  }

  /** The Fulcio certificate (PEM and DER) for this signer's key, requested on first call. */
  async certificate(): Promise<{ pem: string; der: Buffer; identity: SigningIdentity }> {
    this.cert ??= this.requestCertificate();
    return this.cert;
  }

  /** The identity the certificate names (subject and issuer), for messages and the audit log. */
  async identity(): Promise<SigningIdentity> {
    return (await this.certificate()).identity;
  }

  private async requestCertificate(): Promise<{ pem: string; der: Buffer; identity: SigningIdentity }> {
    const token = await this.options.identityToken();
    checkIdentityToken(token);
    const { privateKey, publicKey } = this.key;
    const keyHolder = {
      async sign(data: Buffer) {
        return {
          signature: sign('sha256', data, privateKey),
          key: { $case: 'publicKey' as const, publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString() },
        };
      },
    };
    const { FulcioSigner } = sigstoreSign();
    const fulcio = new FulcioSigner({
      fulcioBaseURL: this.options.fulcioUrl,
      identityProvider: { getToken: async () => token },
      keyHolder,
      timeout: this.options.timeoutMs ?? 30_000,
      retry: 1,
    });
    let pem: string;
    try {
      const signed = await fulcio.sign(Buffer.alloc(0));
      if (signed.key.$case !== 'x509Certificate') throw new Error('no certificate in the answer');
      pem = signed.key.certificate;
    } catch (err) {
      throw serviceError(err, 'fulcio', this.options.fulcioUrl);
    }
    const der = Buffer.from(pem.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, ''), 'base64');
    const cert = sigstoreCore().X509Certificate.parse(der);
    return { pem: new NodeX509Certificate(der).toString(), der, identity: certificateIdentity(cert) };
  }
}

/** Whether `signer` signs keylessly (a Fulcio certificate instead of a key). */
export function isKeyless(signer: Signer): signer is KeylessSigner {
  return signer instanceof KeylessSigner;
}

function certificateIdentity(cert: X509Certificate): SigningIdentity {
  const v2 = cert.extension(OID_ISSUER_V2)?.valueObj.subs?.[0]?.value.toString('utf8');
  const issuer = v2 ?? cert.extension(OID_ISSUER_V1)?.value.toString('utf8') ?? '';
  const san = cert.extSubjectAltName;
  const subject = san?.rfc822Name ?? san?.uri ?? cert.subjectAltName ?? '';
  return { subject, issuer };
}

/**
 * Refuses, before any request, a token Fulcio would refuse for reasons visible here: not a
 * JWT, no issuer or subject, expired. The signature is Fulcio's to check.
 */
export function checkIdentityToken(token: string, now = Date.now()): { issuer: string; subject: string } {
  const invalid = (why: string) =>
    new SignError(SignErrorCode.IDENTITY_TOKEN_INVALID, `invalid identity token: ${why}`, {
      hint: 'pass a fresh OIDC ID token (a JWT) with --identity-token or SIGSTORE_ID_TOKEN',
    });
  const parts = token.trim().split('.');
  if (parts.length !== 3) throw invalid('not a JWT (three base64url parts)');
  let claims: Record<string, unknown>;
  try {
    claims = JSON.parse(Buffer.from(parts[1] as string, 'base64url').toString('utf8'));
  } catch {
    throw invalid('its payload is not JSON');
  }
  if (typeof claims.iss !== 'string' || claims.iss === '') throw invalid('no issuer (iss)');
  const subject = typeof claims.email === 'string' ? claims.email : claims.sub;
  if (typeof subject !== 'string' || subject === '') throw invalid('no subject (sub or email)');
  if (typeof claims.exp === 'number' && claims.exp * 1000 <= now) {
    throw invalid(`expired at ${new Date(claims.exp * 1000).toISOString()}`);
  }
  return { issuer: claims.iss, subject };
}

type Service = 'fulcio' | 'rekor';

/** One line for a failed Fulcio or Rekor call: the service, its URL, why, and what to do. */
export function serviceError(err: unknown, service: Service, url: string): SignError {
  if (err instanceof SignError) return err;
  const e = err as { code?: string; message?: string; cause?: unknown };
  const cause = e?.cause as { statusCode?: number; message?: string } | undefined;
  let reason: string;
  if (cause && typeof cause.statusCode === 'number') reason = `HTTP ${cause.message ?? cause.statusCode}`;
  else if (cause) reason = networkReason(cause);
  else reason = e?.message ?? String(err);
  if (service === 'fulcio') {
    const tokenProblem = e?.code === 'IDENTITY_TOKEN_PARSE_ERROR' || e?.code === 'IDENTITY_TOKEN_READ_ERROR';
    return new SignError(
      tokenProblem ? SignErrorCode.IDENTITY_TOKEN_INVALID : SignErrorCode.CERTIFICATE_REFUSED,
      tokenProblem ? `invalid identity token: ${cause?.message ?? reason}` : `Fulcio at ${url} issued no certificate: ${reason}`,
      {
        hint: tokenProblem
          ? 'pass an OIDC ID token with a verified email or a subject (--identity-token or SIGSTORE_ID_TOKEN)'
          : cause?.statusCode === 401 || cause?.statusCode === 403 || cause?.statusCode === 400
            ? 'the identity token was refused: get a fresh token from an issuer this Fulcio trusts'
            : 'check --fulcio-url (or the signing config) and that Fulcio is reachable',
        cause: err,
      },
    );
  }
  return new SignError(SignErrorCode.TLOG_FAILED, `Rekor at ${url} did not log the signature: ${reason}`, {
    hint: 'check --rekor-url (or the signing config) and that Rekor is reachable; nothing was written',
    cause: err,
  });
}

/** A Rekor witness whose failures are one SignError line. */
export function rekorWitness(
  url: string,
  options: { entryType?: 'dsse' | 'intoto'; majorApiVersion?: number; timeoutMs?: number } = {},
): Witness {
  const { RekorWitness } = sigstoreSign();
  const witness = new RekorWitness({
    rekorBaseURL: url,
    fetchOnConflict: true,
    timeout: options.timeoutMs ?? 30_000,
    retry: 1,
    ...(options.entryType ? { entryType: options.entryType } : {}),
    ...(options.majorApiVersion ? { majorApiVersion: options.majorApiVersion } : {}),
  });
  return {
    async testify(content, publicKey) {
      try {
        return await witness.testify(content, publicKey);
      } catch (err) {
        throw serviceError(err, 'rekor', url);
      }
    },
  };
}

export { TimestampWitness };
