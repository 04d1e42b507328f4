// The fleet view (issue 16): apx_policy_info reports exactly what serves at each scrape (a
// swap leaves no old label set), and the fleet rules as shipped (deploy/prometheus/apx-fleet.yml)
// pass promtool's checks and unit tests (apx-fleet.test.yml).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { toolMissing } from '@apx/core/testing/tools';
import { type PolicyInfo, WorkerMetrics } from './metrics.js';

const HERE = import.meta.dirname ?? dirname(new URL(import.meta.url).pathname);
const DEPLOY = resolve(HERE, '..', '..', '..', '..', 'deploy', 'prometheus');
const DASHBOARD = resolve(DEPLOY, '..', 'grafana', 'apx-fleet.json');

const infoLines = async (metrics: WorkerMetrics): Promise<string[]> =>
  (await metrics.registry.metrics()).split('\n').filter((l) => l.startsWith('apx_policy_info{'));

describe('apx_policy_info', () => {
  it('has one series at 1 per serving version, and only the current ones after a swap or an unload', async () => {
    const metrics = new WorkerMetrics();
    assert.deepEqual(await infoLines(metrics), []);
    let serving: PolicyInfo[] = [
      { policy: 'pb-pay-v1', ref: 'pb-pay-v1@1.0.0', digest: 'sha256:aa', trustVersion: 'none' },
      { policy: 'pb-admin-v2', ref: 'pb-admin-v2@2.0.0', digest: 'sha256:cc', trustVersion: 'none' },
    ];
    metrics.describeServing(() => serving);
    assert.deepEqual((await infoLines(metrics)).sort(), [
      'apx_policy_info{policy="pb-admin-v2",ref="pb-admin-v2@2.0.0",digest="sha256:cc",trust_version="none"} 1',
      'apx_policy_info{policy="pb-pay-v1",ref="pb-pay-v1@1.0.0",digest="sha256:aa",trust_version="none"} 1',
    ]);
    serving = [{ policy: 'pb-pay-v1', ref: 'pb-pay-v1@1.1.0', digest: 'sha256:bb', trustVersion: '12' }];
    assert.deepEqual(await infoLines(metrics), [
      'apx_policy_info{policy="pb-pay-v1",ref="pb-pay-v1@1.1.0",digest="sha256:bb",trust_version="12"} 1',
    ]);
    serving = [];
    assert.deepEqual(await infoLines(metrics), []);
  });
});

describe('fleet rules (deploy/prometheus/apx-fleet.yml)', { skip: toolMissing('promtool') }, () => {
  it('pass promtool check rules and the unit tests of apx-fleet.test.yml', () => {
    for (const args of [
      ['check', 'rules', 'apx-fleet.yml'],
      ['test', 'rules', 'apx-fleet.test.yml'],
    ]) {
      const r = spawnSync('promtool', args, { cwd: DEPLOY, encoding: 'utf8' });
      assert.equal(r.status, 0, `promtool ${args.join(' ')}:\n${r.stdout}${r.stderr}`);
    }
  });
});

describe('Grafana fleet dashboard (deploy/grafana/apx-fleet.json)', () => {
  it('queries only series a worker exports, the fleet rules record, or the fleet alerts', () => {
    const rules = readFileSync(resolve(DEPLOY, 'apx-fleet.yml'), 'utf8');
    const recorded = [...rules.matchAll(/- record: (\S+)/g)].map((m) => m[1]);
    const alerts = [...rules.matchAll(/- alert: (\S+)/g)].map((m) => m[1] as string);
    const known = new Set([...recorded, 'apx_policy_info', 'apx_trust_metadata_version', 'ALERTS']);
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
      panels: Array<{ title: string; targets: Array<{ expr: string }> }>;
    };
    assert.ok(dashboard.panels.length > 0);
    for (const panel of dashboard.panels) {
      for (const { expr } of panel.targets) {
        const names = expr.match(/\b(apx[:_][a-z_:]+|ALERTS)\b/g) ?? [];
        assert.ok(names.length > 0, `${panel.title}: ${expr}`);
        for (const name of names) assert.ok(known.has(name), `${panel.title}: ${name} is not exported or recorded`);
        for (const alert of expr.match(/Apx[A-Za-z]+/g) ?? [])
          assert.ok(alerts.includes(alert), `${panel.title}: no alert ${alert}`);
      }
    }
  });
});
