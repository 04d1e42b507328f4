// `apx compile` wall time for the payments sample as a whole process (start, load, compile,
// sign, write), against `node -e 0` measured in the same run. Goal (issue 3): <= 400 ms.
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const RUNS = Number(process.env.BENCH_RUNS ?? 11);
const root = fileURLToPath(new URL('../..', import.meta.url));
const cli = join(root, 'packages/cli/dist/main.js');
const sample = join(root, 'configs/samples/payments-api.yaml');
const dir = mkdtempSync(join(tmpdir(), 'apx-bench-compile-'));
const env = { ...process.env, COSIGN_PASSWORD: '' };

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

function wall(args: string[]): number {
  const start = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, { cwd: dir, env, stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (r.status !== 0) throw new Error(`${args.join(' ')} failed: ${r.stderr.toString()}`);
  return ms;
}

wall([cli, 'generate-key-pair', '--output-key-prefix', 'keys/cosign']);
const bare: number[] = [];
const signed: number[] = [];
const unsigned: number[] = [];
for (let i = 0; i < RUNS; i++) {
  bare.push(wall(['-e', '0']));
  signed.push(wall([cli, 'compile', sample]));
  unsigned.push(wall([cli, 'compile', '--no-sign', '--out', 'unsigned', sample]));
}
const s = median(signed);
console.log(`apx compile wall time, ${RUNS} runs, median (node ${process.version})`);
console.log(`node -e 0 (baseline):            ${median(bare).toFixed(0).padStart(5)} ms`);
console.log(`apx compile --no-sign:           ${median(unsigned).toFixed(0).padStart(5)} ms`);
console.log(`apx compile (signs, default key): ${s.toFixed(0).padStart(4)} ms  (${(s / median(bare)).toFixed(1)}x baseline)`);
console.log(`goal <= 400 ms: ${s <= 400 ? 'met' : 'NOT met'}`);
