// Issue 16, fleet view: a real Prometheus (Debian's) scrapes two `apx worker` processes on
// loopback every second and evaluates deploy/prometheus/apx-fleet.yml as shipped, except that
// the alerts' `for: 10m` is shortened to 1 s. One worker serves pb-pay-v1@1.1.0, the other is
// behind on 1.0.0 (its store has not got 1.1.0 yet): ApxFleetNotConverged fires. Then 1.1.0
// reaches the second store, that worker swaps (its old apx_policy_info series goes), and the
// alert clears. Read through Prometheus' own HTTP API (/api/v1/alerts, /api/v1/query).
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { toolMissing } from '@apx/core/testing/tools';
import { REPO, scratchDir, WorkerProcess, Workspace } from './harness.js';

const skip = toolMissing('prometheus');

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

interface Alert {
  labels: Record<string, string>;
  state: string;
}

/** Asks `read` again (every 250 ms, at most 90 s) until `done` holds; fails with the last answer. */
async function until<T>(what: string, read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  let last: T | undefined;
  for (let i = 0; i < 360; i++) {
    try {
      last = await read();
      if (done(last)) return last;
    } catch {
      // Prometheus not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what}: still not so after 90 s; last answer: ${JSON.stringify(last)}`);
}

describe('e2e: fleet view in a real Prometheus (apx_policy_info, apx-fleet.yml)', { skip }, () => {
  const workers: WorkerProcess[] = [];
  let prometheus: ChildProcess | undefined;
  after(async () => {
    prometheus?.kill('SIGTERM');
    for (const w of workers) await w.stop();
  });

  it('fires ApxFleetNotConverged while one worker is behind, and clears it once both serve one digest', async () => {
    const ws = new Workspace();
    const v1 = ws.compilePayments('1.0.0');
    const v2 = ws.compilePayments('1.1.0');
    const ahead = ws.path('store-ahead');
    const behind = ws.path('store-behind');
    ws.stage(ahead, v1);
    ws.stage(ahead, v2);
    ws.stage(behind, v1);
    const a = await WorkerProcess.start(ws.dir, { APX_STORE: ahead, APX_POLICIES: 'pb-pay-v1' });
    workers.push(a);
    const b = await WorkerProcess.start(ws.dir, { APX_STORE: behind, APX_POLICIES: 'pb-pay-v1', APX_RELOAD_INTERVAL: '1' });
    workers.push(b);
    await a.waitFor((l) => l.message === 'policy loaded: pb-pay-v1@1.1.0', 'A loaded 1.1.0');
    await b.waitFor((l) => l.message === 'policy loaded: pb-pay-v1@1.0.0', 'B loaded 1.0.0');
    assert.match(
      (await b.get('/metrics')).text,
      /^apx_policy_info\{policy="pb-pay-v1",ref="pb-pay-v1@1\.0\.0",digest="sha256:[0-9a-f]{64}",trust_version="none"\} 1$/m,
    );

    // The shipped rules, with the alerts' 10 minutes shortened for the test.
    const dir = scratchDir('apx-prometheus-');
    const rules = readFileSync(join(REPO, 'deploy', 'prometheus', 'apx-fleet.yml'), 'utf8');
    assert.match(rules, /for: 10m/);
    writeFileSync(join(dir, 'apx-fleet.yml'), rules.replaceAll('for: 10m', 'for: 1s'));
    const targets = [a, b].map((w) => `'${new URL(w.url).host}'`).join(', ');
    writeFileSync(
      join(dir, 'prometheus.yml'),
      `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [apx-fleet.yml]\nscrape_configs:\n  - job_name: apx-worker\n    static_configs:\n      - targets: [${targets}]\n`,
    );
    const port = await freePort();
    let output = '';
    prometheus = spawn(
      'prometheus',
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    prometheus.stderr?.on('data', (c: Buffer) => {
      output += c.toString('utf8');
    });
    const api = `http://127.0.0.1:${port}/api/v1`;
    const alerts = async (): Promise<Alert[]> => {
      const res = await fetch(`${api}/alerts`);
      return ((await res.json()) as { data: { alerts: Alert[] } }).data.alerts;
    };
    const notConverged = (list: Alert[]) => list.filter((x) => x.labels.alertname === 'ApxFleetNotConverged');

    const firing = await until('ApxFleetNotConverged firing', alerts, (l) =>
      notConverged(l).some((x) => x.state === 'firing'),
    ).catch((err: Error) => {
      throw new Error(`${err.message}\nprometheus output:\n${output.slice(-3000)}`);
    });
    assert.deepEqual(
      notConverged(firing).map((x) => ({ job: x.labels.job, policy: x.labels.policy, severity: x.labels.severity })),
      [{ job: 'apx-worker', policy: 'pb-pay-v1', severity: 'warning' }],
    );

    // 1.1.0 reaches the second worker's store: it swaps on its next reload.
    ws.stage(behind, v2);
    await b.waitFor((l) => l.message === 'policy swapped: pb-pay-v1@1.0.0 -> pb-pay-v1@1.1.0', 'B swapped to 1.1.0');
    const info = (await b.get('/metrics')).text.split('\n').filter((l) => l.startsWith('apx_policy_info{'));
    assert.equal(info.length, 1, info.join('\n'));
    assert.match(info[0] as string, /ref="pb-pay-v1@1\.1\.0"/);

    await until('ApxFleetNotConverged cleared', alerts, (l) => notConverged(l).length === 0);
    const query = async () => {
      const res = await fetch(`${api}/query?query=${encodeURIComponent('apx:policy_digest_workers:count')}`);
      return ((await res.json()) as { data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } }).data
        .result;
    };
    const groups = await until('one digest served by both workers', query, (r) => r.length === 1 && r[0]?.value[1] === '2');
    assert.equal(groups[0]?.metric.ref, 'pb-pay-v1@1.1.0');
  });
});
