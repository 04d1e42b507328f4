// The runbook's three alerts as shipped (deploy/prometheus/apx-alerts.yml) against what a real
// worker exports: promtool's unit tests of the rules pass; every metric the rules use is on a
// running worker's /metrics from start, at 0; and the rules, fed with that worker's own series
// before and after refusals, fire for a tampered artifact and for an unknown version, but not
// for one unsigned artifact however often the worker retries it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { policyModule, signatureFile } from '@apx/core/testing';
import { toolMissing } from '@apx/core/testing/tools';
import { resolveConfig } from '../config.js';
import { type RunningWorker, startWorker } from '../worker.js';

const HERE = import.meta.dirname ?? dirname(new URL(import.meta.url).pathname);
const DEPLOY = resolve(HERE, '..', '..', '..', '..', 'deploy', 'prometheus');
const RULES = join(DEPLOY, 'apx-alerts.yml');
const RUNBOOK_METRICS = [
  'apx_artifacts_verification_failures_total',
  'apx_artifacts_unsigned_blocked_total',
  'apx_artifacts_unknown_versions_total',
];
const skip = toolMissing('promtool');

function promtool(args: string[], cwd: string): void {
  const r = spawnSync('promtool', args, { cwd, encoding: 'utf8' });
  assert.equal(r.status, 0, `promtool ${args.join(' ')}:\n${r.stdout}${r.stderr}`);
}

/** The samples of the runbook metrics in a /metrics text: series (name and labels) to value. */
function runbookSamples(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    const name = /^[a-z_]+/.exec(line)?.[0];
    if (name === undefined || !RUNBOOK_METRICS.includes(name)) continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

describe('Prometheus alerting rules for the runbook (deploy/prometheus)', () => {
  const signer = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  let dir: string;
  let worker: RunningWorker;
  let atStart: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'apx-alerts-'));
    await mkdir(join(dir, 'keys'));
    await mkdir(join(dir, 'store'));
    await writeFile(join(dir, 'keys', 'cosign.pub'), signer.publicKey.export({ type: 'spki', format: 'pem' }));
    const { config } = resolveConfig({
      APX_PORT: '0',
      APX_RELOAD_INTERVAL: '0',
      APX_STORE: join(dir, 'store'),
      ALLOWED_POLICY_VERSIONS: '1.0.0',
    });
    worker = await startWorker(config, [], { env: {}, cwd: dir, retryMinMs: 5, logDestination: { write: () => undefined } });
    atStart = await (await fetch(`${worker.url}/metrics`)).text();
  });
  after(async () => {
    await worker?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('uses only metrics a running worker exports, each present from start at 0', async () => {
    const rules = await readFile(RULES, 'utf8');
    const used = new Set(
      rules
        .split('\n')
        .filter((l) => l.trim().startsWith('expr:'))
        .flatMap((l) => l.match(/\bapx_[a-z_]+\b/g) ?? []),
    );
    assert.deepEqual([...used].sort(), [...RUNBOOK_METRICS].sort());
    const samples = runbookSamples(atStart);
    for (const name of used) {
      assert.match(atStart, new RegExp(`^# TYPE ${name} counter$`, 'm'));
      const series = [...samples].filter(([s]) => s === name || s.startsWith(`${name}{`));
      assert.ok(series.length > 0, `${name} has a series at start`);
      for (const [s, value] of series) assert.equal(value, 0, s);
    }
  });

  it('passes promtool check rules and the shipped promtool unit tests', { skip }, () => {
    promtool(['check', 'rules', 'apx-alerts.yml'], DEPLOY);
    promtool(['test', 'rules', 'apx-alerts.test.yml'], DEPLOY);
  });

  it("fed with the worker's own series: a tampered artifact and an unknown version fire, one unsigned artifact retried does not", {
    skip,
  }, async () => {
    // The store fills after the start scrape: a tampered artifact, an unsigned one, and an
    // allowed version beside one the allow-list does not admit.
    const store = join(dir, 'store');
    const put = async (ref: string, bytes: Buffer, sig?: Buffer) => {
      await writeFile(join(store, `${ref}.wasm`), bytes);
      if (sig) await writeFile(join(store, `${ref}.wasm.sig`), sig);
    };
    for (const v of ['1.0.0', '1.1.0']) {
      const bytes = policyModule('pb-good', v);
      await put(`pb-good@${v}`, bytes, signatureFile(bytes, signer.privateKey));
    }
    const genuine = policyModule('pb-tampered', '1.0.0');
    const tampered = Buffer.from(genuine);
    tampered[tampered.length - 2] = 0x2b;
    await put('pb-tampered@1.0.0', tampered, signatureFile(genuine, signer.privateKey));
    await put('pb-unsigned@1.0.0', policyModule('pb-unsigned', '1.0.0'));
    await worker.refresh();
    for (let i = 0; i < 5; i++) await worker.policies.retryWaiting(); // retried, refused the same way each time
    const later = await (await fetch(`${worker.url}/metrics`)).text();
    assert.ok(
      Number(/^apx_policy_load_failures_total\{reason="SIGNATURE_MISSING"\} (\d+)$/m.exec(later)?.[1]) >= 6,
      'the unsigned artifact was tried again and again',
    );

    // Prometheus' view: the start scrape for 2 minutes, then the later one, as job/instance series.
    const before = runbookSamples(atStart);
    const after = runbookSamples(later);
    const target = 'job="apx-worker",instance="worker:8080"';
    const series = (s: string) => (s.includes('{') ? s.replace('{', `{${target},`) : `${s}{${target}}`);
    const input = [...after].map(([s, value]) => ({
      series: series(s),
      values: [before.get(s) ?? 0, before.get(s) ?? 0, value, value, value, value].join(' '),
    }));
    assert.equal(after.get('apx_artifacts_unsigned_blocked_total'), 1, 'one unsigned artifact, counted once');
    const firing = (alertname: string, severity: string) => ({
      labels: `ALERTS{alertname="${alertname}",alertstate="firing",severity="${severity}",${target}}`,
      value: 1,
    });
    const test = {
      rule_files: [RULES],
      evaluation_interval: '1m',
      tests: [
        {
          interval: '1m',
          input_series: input,
          promql_expr_test: [
            { expr: 'ALERTS{alertstate="firing"}', eval_time: '1m', exp_samples: [] },
            {
              expr: 'ALERTS{alertstate="firing"}',
              eval_time: '3m',
              exp_samples: [
                firing('ApxArtifactVerificationFailures', 'critical'),
                firing('ApxUnknownVersionAttempts', 'warning'),
              ],
            },
          ],
        },
      ],
    };
    // JSON is YAML: promtool reads it as is.
    await writeFile(join(dir, 'worker-series.test.yml'), JSON.stringify(test, null, 2));
    promtool(['test', 'rules', 'worker-series.test.yml'], dir);
  });
});
