import { decodeStdBase64 } from '../base64.js';
import { CoreErrorCode, VerificationError } from '../error.js';

/**
 * A signature file's bytes as cosign reads them: when the content is valid standard base64
 * (CR/LF ignored, as Go's decoder does) it is decoded; otherwise the bytes are taken as the
 * raw signature (what `--b64=false` writes).
 */
export function decodeSignatureFile(content: Uint8Array): Buffer {
  const bytes = Buffer.from(content.buffer, content.byteOffset, content.byteLength);
  if (bytes.length === 0) {
    throw new VerificationError(CoreErrorCode.SIGNATURE_MALFORMED, 'malformed signature: the signature is empty', {
      hint: 'sign the artifact again (apx sign-blob)',
    });
  }
  // Text is base64 or nothing: a raw DER or P1363 signature is binary (the INTEGER tag
  // 0x02 alone is not printable), so printable text that does not decode is corrupted
  // base64, and saying so beats cosign's generic "verification failed" for the same input.
  if (isAscii(bytes)) {
    const text = bytes.toString('latin1');
    const decoded = decodeStdBase64(text);
    if (decoded && decoded.length > 0) return decoded;
    throw new VerificationError(
      CoreErrorCode.SIGNATURE_MALFORMED,
      `malformed signature: not valid base64 (${base64Problem(text)})`,
      {
        hint: 'the signature file is corrupted; sign the artifact again',
      },
    );
  }
  return bytes;
}

function base64Problem(text: string): string {
  const compact = text.replace(/[\r\n]/g, '');
  const bad = /[^A-Za-z0-9+/=]/.exec(compact);
  if (bad) return `unexpected character ${JSON.stringify(bad[0])} at offset ${bad.index}`;
  if (compact.length % 4 !== 0) return `length ${compact.length} is not a multiple of 4 (padding missing?)`;
  return 'misplaced padding';
}

function isAscii(bytes: Buffer): boolean {
  for (const b of bytes) if (b > 0x7e || (b < 0x20 && b !== 0x0a && b !== 0x0d)) return false;
  return true;
}

interface DerRead {
  /** Index just past the element. */
  end: number;
  contentStart: number;
}

/** One DER TLV with a minimal definite length, or undefined when it is not DER. */
function readTlv(buf: Buffer, at: number, tag: number): DerRead | undefined {
  if (at + 2 > buf.length || buf[at] !== tag) return undefined;
  const first = buf[at + 1] as number;
  let length: number;
  let contentStart: number;
  if (first < 0x80) {
    length = first;
    contentStart = at + 2;
  } else if (first === 0x81) {
    // Long form is only DER when the short form could not express the length.
    if (at + 3 > buf.length) return undefined;
    length = buf[at + 2] as number;
    if (length < 0x80) return undefined;
    contentStart = at + 3;
  } else {
    return undefined; // no ECDSA signature needs more than 255 content bytes
  }
  const end = contentStart + length;
  if (end > buf.length) return undefined;
  return { end, contentStart };
}

/** A DER INTEGER with minimal encoding (Go's encoding/asn1 rejects anything else). */
function readInteger(buf: Buffer, at: number, limit: number): number | undefined {
  const tlv = readTlv(buf, at, 0x02);
  if (!tlv || tlv.end > limit) return undefined;
  const len = tlv.end - tlv.contentStart;
  if (len === 0) return undefined;
  if (len > 1) {
    const b0 = buf[tlv.contentStart] as number;
    const b1 = buf[tlv.contentStart + 1] as number;
    if ((b0 === 0x00 && b1 < 0x80) || (b0 === 0xff && b1 >= 0x80)) return undefined;
  }
  return tlv.end;
}

/**
 * Length of the DER `SEQUENCE { INTEGER r, INTEGER s }` at the start of `sig`, or
 * undefined when the bytes do not start with one. Trailing bytes are the caller's call.
 */
export function derEcdsaLength(sig: Buffer): number | undefined {
  const seq = readTlv(sig, 0, 0x30);
  if (!seq) return undefined;
  const afterR = readInteger(sig, seq.contentStart, seq.end);
  if (afterR === undefined) return undefined;
  const afterS = readInteger(sig, afterR, seq.end);
  if (afterS !== seq.end) return undefined;
  return seq.end;
}

function derInteger(scalar: Buffer): Buffer {
  let i = 0;
  while (i < scalar.length - 1 && scalar[i] === 0) i++;
  const trimmed = scalar.subarray(i);
  const pad = (trimmed[0] as number) & 0x80 ? Buffer.of(0) : Buffer.alloc(0);
  const body = Buffer.concat([pad, trimmed]);
  return Buffer.concat([Buffer.of(0x02, body.length), body]);
}

/** IEEE P1363 `r || s` re-encoded as DER, so one verification path serves both forms. */
export function p1363ToDer(sig: Buffer): Buffer {
  const half = sig.length / 2;
  const content = Buffer.concat([derInteger(sig.subarray(0, half)), derInteger(sig.subarray(half))]);
  const len = content.length < 0x80 ? Buffer.of(content.length) : Buffer.of(0x81, content.length);
  return Buffer.concat([Buffer.of(0x30), len, content]);
}

/**
 * The DER form of an ECDSA signature, decided as sigstore's ECDSAVerifier decides:
 * 1. bytes that parse as ASN.1 DER are DER, and then must have no trailing bytes
 *    (Go's ecdsa.VerifyASN1 rejects them; so do we, with the reason);
 * 2. otherwise an even, non-zero length up to 132 bytes is IEEE P1363 `r || s`.
 * High-S values pass through untouched: Go applies no low-S rule, nor does APX.
 */
export function ecdsaSignatureToDer(sig: Buffer): Buffer {
  const derLength = derEcdsaLength(sig);
  if (derLength !== undefined) {
    if (derLength !== sig.length) {
      const extra = sig.length - derLength;
      throw new VerificationError(
        CoreErrorCode.SIGNATURE_MALFORMED,
        `malformed signature: ${extra} trailing byte${extra === 1 ? '' : 's'} after the DER ECDSA signature`,
        { hint: 'the signature file was altered; sign the artifact again' },
      );
    }
    return sig;
  }
  if (sig.length > 0 && sig.length % 2 === 0 && sig.length <= 132) return p1363ToDer(sig);
  throw new VerificationError(
    CoreErrorCode.SIGNATURE_MALFORMED,
    `malformed signature: ${sig.length} bytes that are neither base64, ASN.1 DER nor IEEE P1363`,
    { hint: 'pass the .sig file that apx sign-blob or cosign sign-blob wrote' },
  );
}
