// Verifying a signature from the artifact's digest alone (`apx verify-blob sha256:<hex>`,
// cosign's and the Sigstore conformance protocol's digest form). Node's crypto.verify always
// hashes its input, so a message signature over a blob cannot be checked against the blob's
// digest with it. ECDSA verification is done here on the curve directly (public data only:
// no secret, so no timing concern); RSA PKCS#1 v1.5 by recovering the DigestInfo with the
// public key. Pure Ed25519 signs the message itself and cannot be checked from a digest.
import { constants, type KeyObject, publicDecrypt } from 'node:crypto';
import { derEcdsaLength } from './encoding.js';

interface Curve {
  p: bigint;
  a: bigint;
  n: bigint;
  gx: bigint;
  gy: bigint;
  bits: number;
}

const h = (s: string) => BigInt(`0x${s}`);
// Parameters of SEC 2 / FIPS 186-4 (checked against `openssl ecparam -param_enc explicit`).
const CURVES: Record<string, Curve> = {
  prime256v1: {
    p: h('ffffffff00000001000000000000000000000000ffffffffffffffffffffffff'),
    a: h('ffffffff00000001000000000000000000000000fffffffffffffffffffffffc'),
    n: h('ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551'),
    gx: h('6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296'),
    gy: h('4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5'),
    bits: 256,
  },
  secp384r1: {
    p: h('fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffff'),
    a: h('fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000fffffffc'),
    n: h('ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973'),
    gx: h('aa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab7'),
    gy: h('3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5f'),
    bits: 384,
  },
  secp521r1: {
    p: (1n << 521n) - 1n,
    a: (1n << 521n) - 4n,
    n: h(
      '01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409',
    ),
    gx: h(
      '00c6858e06b70404e9cd9e3ecb662395b4429c648139053fb521f828af606b4d3dbaa14b5e77efe75928fe1dc127a2ffa8de3348b3c1856a429bf97e7e31c2e5bd66',
    ),
    gy: h(
      '011839296a789a3bc0045c8a5fb42c7d1bd998f54449579b446817afbd17273e662c97ee72995ef42640c550b9013fad0761353c7086a272c24088be94769fd16650',
    ),
    bits: 521,
  },
};

type Point = { x: bigint; y: bigint } | null; // null: the point at infinity

const mod = (v: bigint, m: bigint) => {
  const r = v % m;
  return r < 0n ? r + m : r;
};

function inverse(v: bigint, m: bigint): bigint {
  let [a, b, x0, x1] = [mod(v, m), m, 1n, 0n];
  while (b !== 0n) {
    const q = a / b;
    [a, b] = [b, a - q * b];
    [x0, x1] = [x1, x0 - q * x1];
  }
  if (a !== 1n) throw new Error('not invertible');
  return mod(x0, m);
}

function add(c: Curve, P: Point, Q: Point): Point {
  if (P === null) return Q;
  if (Q === null) return P;
  let l: bigint;
  if (P.x === Q.x) {
    if (mod(P.y + Q.y, c.p) === 0n) return null;
    l = mod((3n * P.x * P.x + c.a) * inverse(2n * P.y, c.p), c.p);
  } else {
    l = mod((Q.y - P.y) * inverse(Q.x - P.x, c.p), c.p);
  }
  const x = mod(l * l - P.x - Q.x, c.p);
  return { x, y: mod(l * (P.x - x) - P.y, c.p) };
}

function multiply(c: Curve, P: Point, k: bigint): Point {
  let result: Point = null;
  let addend = P;
  while (k > 0n) {
    if (k & 1n) result = add(c, result, addend);
    addend = add(c, addend, addend);
    k >>= 1n;
  }
  return result;
}

const toBigInt = (b: Buffer) => (b.length === 0 ? 0n : BigInt(`0x${b.toString('hex')}`));

/** r and s of a strict DER ECDSA signature, or undefined. */
function derScalars(sig: Buffer): [bigint, bigint] | undefined {
  if (derEcdsaLength(sig) !== sig.length) return undefined;
  // SEQUENCE { INTEGER r, INTEGER s }, lengths already checked by derEcdsaLength.
  let i = sig[1] !== undefined && sig[1] & 0x80 ? 2 + (sig[1] & 0x7f) : 2;
  const int = (): bigint => {
    const len = sig[i + 1] ?? 0;
    const v = sig.subarray(i + 2, i + 2 + len);
    i += 2 + len;
    return toBigInt(v);
  };
  return [int(), int()];
}

/** True when `sig` (DER, or P1363 r||s of the curve's size) is an ECDSA signature of `digest` by `key`. */
function verifyEcdsa(key: KeyObject, digest: Buffer, sig: Buffer): boolean {
  const curve = CURVES[key.asymmetricKeyDetails?.namedCurve ?? ''];
  if (!curve) return false;
  const jwk = key.export({ format: 'jwk' });
  if (typeof jwk.x !== 'string' || typeof jwk.y !== 'string') return false;
  const Q = { x: toBigInt(Buffer.from(jwk.x, 'base64url')), y: toBigInt(Buffer.from(jwk.y, 'base64url')) };
  const size = Math.ceil(curve.bits / 8);
  const scalars =
    derScalars(sig) ??
    (sig.length === 2 * size ? ([toBigInt(sig.subarray(0, size)), toBigInt(sig.subarray(size))] as [bigint, bigint]) : undefined);
  if (!scalars) return false;
  const [r, s] = scalars;
  if (r < 1n || r >= curve.n || s < 1n || s >= curve.n) return false;
  // FIPS 186-4 6.4: e is the leftmost min(bitlen(n), bitlen(digest)) bits of the digest.
  let e = toBigInt(digest);
  const excess = digest.length * 8 - curve.bits;
  if (excess > 0) e >>= BigInt(excess);
  const w = inverse(s, curve.n);
  const X = add(
    curve,
    multiply(curve, { x: curve.gx, y: curve.gy }, mod(e * w, curve.n)),
    multiply(curve, Q, mod(r * w, curve.n)),
  );
  return X !== null && mod(X.x, curve.n) === r;
}

/** DER prefixes of PKCS#1 v1.5 DigestInfo (RFC 8017 9.2 note 1). */
const DIGEST_INFO: Record<string, string> = {
  sha256: '3031300d060960864801650304020105000420',
  sha384: '3041300d060960864801650304020205000430',
  sha512: '3051300d060960864801650304020305000440',
};

function verifyRsa(key: KeyObject, digest: Buffer, algorithm: string, sig: Buffer): boolean {
  const prefix = DIGEST_INFO[algorithm];
  if (!prefix) return false;
  let recovered: Buffer;
  try {
    recovered = publicDecrypt({ key, padding: constants.RSA_PKCS1_PADDING }, sig);
  } catch {
    return false;
  }
  return recovered.equals(Buffer.concat([Buffer.from(prefix, 'hex'), digest]));
}

export type PrehashedResult = 'valid' | 'invalid' | 'unsupported';

/**
 * Checks a signature made over a message whose `algorithm` digest is `digest`, without the
 * message. 'unsupported' for keys that sign the message itself (Ed25519).
 */
export function verifyPrehashed(key: KeyObject, algorithm: string, digest: Buffer, sig: Buffer): PrehashedResult {
  switch (key.asymmetricKeyType) {
    case 'ec':
      return verifyEcdsa(key, digest, sig) ? 'valid' : 'invalid';
    case 'rsa':
      return verifyRsa(key, digest, algorithm, sig) ? 'valid' : 'invalid';
    default:
      return 'unsupported';
  }
}
