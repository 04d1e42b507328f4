// Test material for verifying policy artifacts without a compiler: a minimal module that
// follows the policy ABI (hand-encoded WebAssembly binary), detached signatures and APX
// binding bundles. Exported as `@apx/core/testing`; never used by production code.
import { type KeyObject, sign } from 'node:crypto';
import { bundleToJSON, toDSSEBundle } from '@sigstore/bundle';
import { dsse } from '@sigstore/core';
import type { VerifiedArtifact } from '../artifact/verified-artifact.js';
import { type ArtifactBinding, bindingStatement } from '../binding/statement.js';
import { IN_TOTO_PAYLOAD_TYPE } from '../bundle/verify.js';
import { PublicKey } from '../keys/public-key.js';
import { ABI_VERSION } from '../wasm/abi.js';
import { PolicyHost, UNMETERED_FOR_BENCHMARKS } from '../wasm/host.js';

const uleb = (n: number): number[] => {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
};

const sleb = (n: number): number[] => {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
};

const name = (text: string): number[] => {
  const bytes = [...Buffer.from(text, 'utf8')];
  return [...uleb(bytes.length), ...bytes];
};

const section = (id: number, payload: number[]): number[] => [id, ...uleb(payload.length), ...payload];

/** Tables of a policy with one route and one reason, that allows everything. */
export const TEST_TABLES = {
  reasons: ['ok'],
  routes: [{ name: 'r' }],
  rules: [],
  apiKeys: [],
  apiKeyHeader: null,
  jwt: null,
  headerSlots: [],
  headers: { request: { set: {}, remove: [] }, response: { set: {}, remove: [] } },
  rateLimits: [],
  memoryPages: 2,
};

export interface PolicyModuleOptions {
  /** Overrides of `apx.meta` (policy and version come from the arguments). */
  meta?: Record<string, unknown>;
  /** Add a start function (which a verifier must refuse). */
  start?: boolean;
  /**
   * Count to this many in a loop before deciding (a slow policy); Infinity: loop forever
   * (a hostile or broken policy that a deadline must stop).
   */
  spin?: number;
}

/**
 * A module of policy ABI v1 whose `apx.meta` names `policyId@version`: imports env.memory
 * (2 pages), exports `decide`, which writes an allow decision (status 200, reason 0, route 0).
 */
export function policyModule(policyId: string, version: string, options: PolicyModuleOptions = {}): Buffer {
  const meta = {
    policy: policyId,
    version,
    abi: ABI_VERSION,
    compiler: 'test',
    sourceSha256: '0'.repeat(64),
    ...options.meta,
  };
  const store = (offset: number, value: number) => [0x41, ...sleb(offset), 0x41, ...sleb(value), 0x36, 0x02, 0x00];
  const record = [1, 200, 0, 0, -1, 0, -1];
  // loop: local0 += 1; br_if (local0 <u spin)  (or `br 0` forever)
  const spin =
    options.spin === undefined
      ? [0x00]
      : options.spin === Number.POSITIVE_INFINITY
        ? [0x00, 0x03, 0x40, 0x0c, 0x00, 0x0b]
        : [
            0x01,
            0x01,
            0x7f,
            0x03,
            0x40,
            0x20,
            0x00,
            0x41,
            0x01,
            0x6a,
            0x22,
            0x00,
            0x41,
            ...sleb(options.spin),
            0x49,
            0x0d,
            0x00,
            0x0b,
          ];
  const decide = [...spin, ...record.flatMap((v, i) => store(i * 4, v)), 0x41, 0x01, 0x0b];
  const types = [0x60, 0x00, 0x01, 0x7f, ...(options.start ? [0x60, 0x00, 0x00] : [])];
  const functions = options.start ? [0x00, 0x01] : [0x00];
  const bodies = [[...uleb(decide.length), ...decide], ...(options.start ? [[0x02, 0x00, 0x0b]] : [])];
  const bytes = [
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, [options.start ? 2 : 1, ...types]),
    ...section(2, [0x01, ...name('env'), ...name('memory'), 0x02, 0x01, 0x02, 0x02]),
    ...section(3, [functions.length, ...functions]),
    ...section(7, [0x01, ...name('decide'), 0x00, 0x00]),
    ...(options.start ? section(8, [0x01]) : []),
    ...section(10, [bodies.length, ...bodies.flat()]),
    ...section(0, [...name('apx.meta'), ...Buffer.from(JSON.stringify(meta))]),
    ...section(0, [...name('apx.tables'), ...Buffer.from(JSON.stringify(TEST_TABLES))]),
  ];
  return Buffer.from(bytes);
}

/** A cosign `.sig` file: base64 of the DER ECDSA signature over the bytes. */
export function signatureFile(bytes: Uint8Array, privateKey: KeyObject): Buffer {
  return Buffer.from(sign('sha256', bytes, privateKey).toString('base64'));
}

/** A Sigstore bundle (v0.3, DSSE) carrying any in-toto statement, signed with `privateKey`. */
export function statementBundle(statement: unknown, privateKey: KeyObject): Buffer {
  const payload = Buffer.from(JSON.stringify(statement));
  const signature = sign('sha256', dsse.preAuthEncoding(IN_TOTO_PAYLOAD_TYPE, payload), privateKey);
  const keyHint = PublicKey.fromKeyObject(privateKey).keyId;
  const bundle = toDSSEBundle({ artifact: payload, artifactType: IN_TOTO_PAYLOAD_TYPE, signature, keyHint });
  return Buffer.from(JSON.stringify(bundleToJSON(bundle)));
}

/** The `.sigstore.json` apx sign writes: the APX binding of `bytes` as `policyId@version` for `environment`. */
export function bindingBundle(
  bytes: Uint8Array,
  binding: Pick<ArtifactBinding, 'policyId' | 'version' | 'environment'> & Partial<ArtifactBinding>,
  privateKey: KeyObject,
): Buffer {
  const statement = bindingStatement(bytes, {
    size: bytes.byteLength,
    abiVersion: ABI_VERSION,
    compilerVersion: 'test',
    sourceDigest: null,
    signedAt: new Date().toISOString(),
    ...binding,
  });
  return statementBundle(statement, privateKey);
}

/**
 * A PolicyHost for a verified artifact, run from its verified bytes WITHOUT metering (no
 * decision deadline): for benchmarks that measure what metering costs, never for serving.
 */
export function unmeteredPolicyHost(artifact: VerifiedArtifact, bytes: Uint8Array): PolicyHost {
  return PolicyHost[UNMETERED_FOR_BENCHMARKS](artifact, bytes);
}
