import { createHash, randomBytes } from 'node:crypto';
import type { RFC3161Timestamp } from '@sigstore/core';
import type { SignatureBundle, VerificationMaterial, Witness } from '@sigstore/sign';
import { SignError, SignErrorCode } from './error.js';
import { sigstoreCore } from './sigstore-libs.js';

const SHA256_OID = Buffer.from('0609608648016503040201', 'hex'); // OBJECT IDENTIFIER 2.16.840.1.101.3.4.2.1

/** One DER TLV (tag, definite length, value). */
function der(tag: number, ...parts: Buffer[]): Buffer {
  const value = Buffer.concat(parts);
  const n = value.length;
  let length: Buffer;
  if (n < 0x80) length = Buffer.from([n]);
  else if (n < 0x100) length = Buffer.from([0x81, n]);
  else length = Buffer.from([0x82, n >> 8, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), length, value]);
}

/**
 * An RFC 3161 TimeStampReq for a SHA-256 digest, asking for the TSA's certificate, with a
 * 31-bit random nonce (positive, and exact in every client and server that reads it as a number).
 */
export function timeStampRequest(sha256: Buffer, nonce = randomBytes(4).readUInt32BE(0) >>> 1 || 1): Buffer {
  const nonceBytes = Buffer.alloc(4);
  nonceBytes.writeUInt32BE(nonce);
  return der(
    0x30,
    der(0x02, Buffer.from([1])), // version v1
    der(0x30, der(0x30, SHA256_OID, Buffer.from([0x05, 0x00])), der(0x04, sha256)), // messageImprint
    der(0x02, nonceBytes[0] === 0 ? nonceBytes.subarray(1) : nonceBytes), // nonce
    der(0x01, Buffer.from([0xff])), // certReq TRUE
  );
}

export interface TimestampWitnessOptions {
  /** The TSA's URL, used as given (cosign's --timestamp-server-url: e.g. https://timestamp.sigstore.dev/api/v1/timestamp). */
  url: string;
  timeoutMs?: number;
  fetch?: typeof fetch;
}

/**
 * A Sigstore witness that timestamps the signature with an RFC 3161 TSA over the standard
 * protocol (`application/timestamp-query`, as cosign sends it), so any RFC 3161 TSA serves,
 * Sigstore's included. The reply is checked (granted, over this signature) before it is kept.
 */
export class TimestampWitness implements Witness {
  readonly url: string;
  private readonly timeoutMs: number;
  private readonly fetchFn: typeof fetch;

  constructor(options: TimestampWitnessOptions) {
    this.url = options.url;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.fetchFn = options.fetch ?? fetch;
  }

  async testify(content: SignatureBundle): Promise<VerificationMaterial> {
    const signature =
      content.$case === 'dsseEnvelope' ? content.dsseEnvelope.signatures[0]?.sig : content.messageSignature.signature;
    if (!signature) throw new SignError(SignErrorCode.TIMESTAMP_FAILED, 'timestamp request failed: nothing signed to timestamp');
    return { rfc3161Timestamps: [{ signedTimestamp: await this.timestamp(signature) }] };
  }

  /** The TimeStampResp (DER) for `data`'s SHA-256, as the bundle stores it. */
  async timestamp(data: Buffer): Promise<Buffer> {
    const digest = createHash('sha256').update(data).digest();
    const fail = (reason: string, cause?: unknown) =>
      new SignError(SignErrorCode.TIMESTAMP_FAILED, `timestamp request to ${this.url} failed: ${reason}`, {
        hint: 'check --timestamp-server-url (an RFC 3161 TSA, e.g. https://timestamp.sigstore.dev/api/v1/timestamp) and that it is reachable',
        ...(cause === undefined ? {} : { cause }),
      });
    let reply: Buffer<ArrayBuffer>;
    try {
      const res = await this.fetchFn(this.url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/timestamp-query', Accept: 'application/timestamp-reply' },
        body: timeStampRequest(digest),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      reply = Buffer.from(await res.arrayBuffer());
      if (!res.ok) throw fail(`HTTP ${res.status}${reply.length > 0 && reply.length < 200 ? ` (${oneLine(reply)})` : ''}`);
    } catch (err) {
      if (err instanceof SignError) throw err;
      throw fail(networkReason(err), err);
    }
    let parsed: RFC3161Timestamp;
    try {
      parsed = sigstoreCore().RFC3161Timestamp.parse(reply);
      if (parsed.status > 1n) throw fail(`the TSA refused (status ${parsed.status})`);
      if (!parsed.tstInfo.messageImprintHashedMessage.equals(digest)) throw fail('the reply is for another digest');
    } catch (err) {
      if (err instanceof SignError) throw err;
      throw fail('the reply is not an RFC 3161 timestamp response', err);
    }
    return reply;
  }
}

function oneLine(body: Buffer): string {
  return body.toString('utf8').replace(/\s+/g, ' ').trim();
}

/** Why a request did not get an answer, in a few words (connection refused, timed out...). */
export function networkReason(err: unknown): string {
  const e = err as { name?: string; message?: string; code?: string; cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return 'timed out';
  const code = e?.cause?.code ?? e?.code;
  if (code === 'ECONNREFUSED') return 'connection refused';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'host not found';
  if (code) return code;
  return e?.cause?.message ?? e?.message ?? String(err);
}
