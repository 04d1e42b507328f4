// Verification throughput: APX's SignatureVerifier against raw crypto.verify with a
// preloaded KeyObject, same key, blob and signature, measured in the same run.
// Rounds alternate between the two so that machine noise hits both alike; the figure
// reported is the median of per-round ratios. Goal (issue 2): ratio >= 0.9 at every size.
import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { PublicKey, SignatureVerifier } from '@apx/core';

const SIZES: Array<[string, number]> = [
  ['1 KiB', 1024],
  ['100 KiB', 100 * 1024],
  ['10 MiB', 10 * 1024 * 1024],
];
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const ROUND_MS = Number(process.env.BENCH_ROUND_MS ?? 300);

function opsPerSecond(fn: () => void): number {
  let n = 0;
  const start = process.hrtime.bigint();
  const budget = BigInt(ROUND_MS) * 1_000_000n;
  let elapsed = 0n;
  do {
    fn();
    n++;
    elapsed = process.hrtime.bigint() - start;
  } while (elapsed < budget);
  return (n * 1e9) / Number(elapsed);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const verifier = new SignatureVerifier(PublicKey.fromKeyObject(publicKey));
console.log(`verify throughput, ECDSA P-256, ${ROUNDS} alternating rounds of ${ROUND_MS} ms (node ${process.version})`);
console.log('size      raw crypto.verify/s   apx verifier/s   ratio (median of rounds)');
let worst = Number.POSITIVE_INFINITY;
for (const [label, size] of SIZES) {
  const blob = Buffer.alloc(size, 0xa5);
  const der = sign('sha256', blob, privateKey);
  const sigFile = Buffer.from(der.toString('base64')); // what a .sig file holds
  const raws: number[] = [];
  const apxs: number[] = [];
  const ratios: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const raw = opsPerSecond(() => {
      if (!verify('sha256', blob, publicKey, der)) throw new Error('raw verify failed');
    });
    const apx = opsPerSecond(() => verifier.verify(blob, sigFile));
    raws.push(raw);
    apxs.push(apx);
    ratios.push(apx / raw);
  }
  const ratio = median(ratios);
  worst = Math.min(worst, ratio);
  console.log(
    `${label.padEnd(9)} ${median(raws).toFixed(0).padStart(19)} ${median(apxs).toFixed(0).padStart(16)}   ${ratio.toFixed(3)}`,
  );
}
console.log(`worst ratio ${worst.toFixed(3)} (goal >= 0.9): ${worst >= 0.9 ? 'met' : 'NOT met'}`);
