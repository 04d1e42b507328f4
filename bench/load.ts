// Cold load (issue 17): a worker that has never seen an artifact loads it from its local store
// through its own load path (PolicyLoader over the store source: read, verify, compile,
// instantiate), against the floor measured in the same run on the same files: read the file
// once, one SHA-256, one signature verify (crypto.verify over the bundle's signed payload),
// WebAssembly.compile and instantiate. Two artifacts: the payments sample, and the same module
// brought to the 10 MiB cap by a passive data segment (signed after padding: every byte is
// hashed, verified, metered and compiled, on both sides). Runs alternate between the loader and the floor, and
// which goes first, so that drift and collections on a shared machine hit both; the figure is
// the median after warm-up. Both sides compile the same bytes every run, so V8 may reuse a
// module it still holds for either. Goal: load <= 2x the floor.
//
// Only interfaces that existed at d1e0f53 are used (PolicyLoader, openArtifactSource,
// policyHostRuntime, keysTrust), so the lead can measure the "before" figures with this file.
import { createHash, generateKeyPairSync, verify } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { keysTrust, MAX_ARTIFACT_BYTES, PublicKey, SignatureVerifier } from '@apx/core';
import { FileSigner, signArtifact } from '@apx/sign';
import { type LoadObserver, openArtifactSource, PolicyLoader, policyHostRuntime } from '@apx/worker';
import { signedSample } from './fixture.js';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const ms = (from: bigint) => Number(process.hrtime.bigint() - from) / 1e6;

// The compiled payments sample; both stores below are signed with this bench's own key.
const sample = await signedSample('apx-bench-load-');
const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ref = { policyId: 'pb-pay-v1', version: '1.0.0' };
const verifier = new SignatureVerifier(PublicKey.fromKeyObject(keys.publicKey));
const quiet: LoadObserver = { loaded() {}, rejected() {}, unsignedAccepted() {}, diskEntryRejected() {} };
const runtimeFactory = policyHostRuntime(() => undefined);

/** LEB128 of an unsigned 32-bit value (WebAssembly section framing). */
function leb(n: number): Buffer {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return Buffer.from(out);
}

/** An unsigned LEB128 at `at`: its value and its width in bytes. */
function readLeb(bytes: Uint8Array, at: number): [number, number] {
  let value = 0;
  let width = 0;
  let byte: number;
  do {
    byte = bytes[at + width] as number;
    value += (byte & 0x7f) * 2 ** (7 * width);
    width++;
  } while (byte & 0x80);
  return [value, width];
}

/**
 * The module with one passive data segment added to its data section, so that the whole file
 * is exactly `total` bytes. Passive: never copied into the (1 MiB) memory, but part of the
 * module that metering keeps and WebAssembly compiles, on the worker's side as on the floor's.
 */
function padded(wasm: Uint8Array, total: number): Buffer {
  const bytes = Buffer.from(wasm);
  for (let at = 8; at < bytes.length; ) {
    const [size, width] = readLeb(bytes, at + 1);
    const start = at + 1 + width;
    if (bytes[at] === 11) {
      const [count, countWidth] = readLeb(bytes, start);
      const segments = bytes.subarray(start + countWidth, start + size);
      const before = bytes.subarray(0, at);
      const after = bytes.subarray(start + size);
      for (let n = total - bytes.length; n > 0; n--) {
        const content = leb(count + 1).length + segments.length + 1 + leb(n).length + n;
        const length = before.length + 1 + leb(content).length + content + after.length;
        if (length < total) break;
        if (length > total) continue;
        const filler = Buffer.alloc(n);
        for (let i = 0; i < n; i++) filler[i] = (i * 2654435761) >>> 24; // not all zeros
        const section = [leb(count + 1), segments, Buffer.from([0x01]), leb(n), filler];
        return Buffer.concat([before, Buffer.from([11]), leb(content), ...section, after]);
      }
    }
    at = start + size;
  }
  throw new Error(`cannot pad ${wasm.length} bytes to ${total} with a data segment`);
}

/** A store directory holding `wasm` as pb-pay-v1@1.0.0 with its .sig and bundle, as apx publish leaves it. */
async function storeWith(wasm: Uint8Array, name: string): Promise<string> {
  const dir = join(sample.dir, name);
  mkdirSync(dir, { recursive: true });
  const signed = await signArtifact(new FileSigner('bench', keys.privateKey), wasm, {
    policyId: ref.policyId,
    version: ref.version,
    environment: 'dev',
    abiVersion: null,
    compilerVersion: null,
    sourceDigest: null,
  });
  const artifact = join(dir, sample.fileName);
  writeFileSync(artifact, wasm);
  writeFileSync(`${artifact}.sig`, signed.signatureFileContent);
  writeFileSync(`${artifact}.sigstore.json`, signed.bundleJson);
  return dir;
}

/** The floor's read: one open file, its size, one read into a buffer of exactly that size. */
async function readOnce(path: string): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    const bytes = Buffer.allocUnsafe(size);
    let at = 0;
    while (at < size) {
      const { bytesRead } = await handle.read(bytes, at, size - at, at);
      if (bytesRead === 0) throw new Error(`floor: ${path} shrank while read`);
      at += bytesRead;
    }
    return bytes;
  } finally {
    await handle.close();
  }
}

/** DSSE pre-authentication encoding: what the bundle's signature covers. */
function pae(type: string, payload: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`DSSEv1 ${Buffer.byteLength(type)} ${type} ${payload.length} `), payload]);
}

interface Case {
  label: string;
  dir: string;
  runs: number;
}

async function measure({ label, dir, runs }: Case): Promise<boolean> {
  const path = join(dir, sample.fileName);
  const bundle = JSON.parse(readFileSync(`${path}.sigstore.json`, 'utf8')) as {
    dsseEnvelope: { payload: string; payloadType: string; signatures: { sig: string }[] };
  };
  const envelope = bundle.dsseEnvelope;
  const signedPayload = pae(envelope.payloadType, Buffer.from(envelope.payload, 'base64'));
  const signature = Buffer.from(envelope.signatures[0]?.sig ?? '', 'base64');
  const bytes = readFileSync(path);
  const tables = WebAssembly.Module.customSections(new WebAssembly.Module(bytes), 'apx.tables')[0] as ArrayBuffer;
  const pages = (JSON.parse(Buffer.from(tables).toString('utf8')) as { memoryPages: number }).memoryPages;

  const store = await openArtifactSource(dir);
  const warmUp = Math.max(5, Math.floor(runs / 10));
  const loads: number[] = [];
  const floors: number[] = [];
  const parts = { read: [] as number[], sha256: [] as number[], verify: [] as number[], compile: [] as number[] };
  const loadOnce = async (): Promise<number> => {
    // A fresh loader each time: nothing cached in memory, as for a worker meeting the artifact.
    const loader = new PolicyLoader({
      source: store,
      trust: { kind: 'keys', trustFor: async () => keysTrust(verifier) },
      strict: true,
      allowList: undefined,
      runtimeFactory,
      observer: quiet,
      memoryCacheEntries: 4,
      binding: { environment: 'dev', required: true },
    });
    const t0 = process.hrtime.bigint();
    await loader.load(ref);
    return ms(t0);
  };
  const floorOnce = async (): Promise<number[]> => {
    const f0 = process.hrtime.bigint();
    const read = await readOnce(path);
    const f1 = process.hrtime.bigint();
    createHash('sha256').update(read).digest();
    const f2 = process.hrtime.bigint();
    if (!verify('sha256', signedPayload, keys.publicKey, signature)) throw new Error('floor: the bundle does not verify');
    const f3 = process.hrtime.bigint();
    const module = await WebAssembly.compile(read);
    await WebAssembly.instantiate(module, { env: { memory: new WebAssembly.Memory({ initial: pages, maximum: pages }) } });
    return [ms(f0), Number(f1 - f0) / 1e6, Number(f2 - f1) / 1e6, Number(f3 - f2) / 1e6, ms(f3)];
  };
  for (let i = 0; i < warmUp + runs; i++) {
    // Alternating which goes first: a collection of the garbage one leaves falls on both alike.
    let load: number;
    let floor: number[];
    if (i % 2 === 0) {
      load = await loadOnce();
      floor = await floorOnce();
    } else {
      floor = await floorOnce();
      load = await loadOnce();
    }
    if (i < warmUp) continue;
    loads.push(load);
    floors.push(floor[0] as number);
    parts.read.push(floor[1] as number);
    parts.sha256.push(floor[2] as number);
    parts.verify.push(floor[3] as number);
    parts.compile.push(floor[4] as number);
  }
  const load = median(loads);
  const floor = median(floors);
  const ratio = load / floor;
  const met = ratio <= 2;
  console.log(`cold load, ${label} (${bytes.length} bytes), median of ${runs} runs after ${warmUp} warm-up:`);
  console.log(`  apx worker load path  ${load.toFixed(3)} ms`);
  console.log(
    `  floor                 ${floor.toFixed(3)} ms (read ${median(parts.read).toFixed(3)}, sha256 ${median(parts.sha256).toFixed(3)}, verify ${median(parts.verify).toFixed(3)}, compile + instantiate ${median(parts.compile).toFixed(3)})`,
  );
  console.log(`  ratio ${ratio.toFixed(2)}x floor (goal <= 2x floor: ${met ? 'met' : 'NOT met'})`);
  return met;
}

console.log(`node ${process.version}`);
const small = await storeWith(sample.wasm, 'store-sample');
const big = await storeWith(padded(sample.wasm, MAX_ARTIFACT_BYTES), 'store-10mib');
const results = [
  await measure({ label: 'payments sample', dir: small, runs: Number(process.env.BENCH_RUNS ?? 300) }),
  await measure({ label: '10 MiB artifact', dir: big, runs: Number(process.env.BENCH_RUNS_LARGE ?? 40) }),
];
rmSync(sample.dir, { recursive: true, force: true });
console.log(
  `goal <= 2x floor: ${results.every(Boolean) ? 'met' : 'NOT met'} for ${results.filter(Boolean).length} of ${results.length}`,
);
