import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WorkerMetrics } from './metrics.js';

const series = (text: string, name: string) => text.split('\n').filter((l) => l.startsWith(`${name}{`));

describe('decision tallies', () => {
  it('appear in apx_decisions_total and the dry-run counter at each read, each count once', async () => {
    const m = new WorkerMetrics();
    const allow = m.decisionTally('pb-pay-v1', 'allow');
    assert.equal(m.decisionTally('pb-pay-v1', 'allow'), allow, 'one tally per label set');
    allow.inc();
    allow.inc();
    m.decisionTally('pb-pay-v1', 'rate_limited').inc();
    m.decisionTally('pb-pay-v1', 'dry_run').inc();
    assert.deepEqual(series(await m.registry.metrics(), 'apx_decisions_total'), [
      'apx_decisions_total{policy="pb-pay-v1",outcome="allow"} 2',
      'apx_decisions_total{policy="pb-pay-v1",outcome="rate_limited"} 1',
    ]);
    allow.inc();
    const text = await m.registry.metrics();
    assert.deepEqual(series(text, 'apx_decisions_total'), [
      'apx_decisions_total{policy="pb-pay-v1",outcome="allow"} 3',
      'apx_decisions_total{policy="pb-pay-v1",outcome="rate_limited"} 1',
    ]);
    assert.deepEqual(series(text, 'apx_decisions_dry_run_denied_total'), [
      'apx_decisions_dry_run_denied_total{policy="pb-pay-v1"} 1',
    ]);
    const json = await m.decisions.get();
    assert.equal(json.values.find((v) => v.labels.outcome === 'allow')?.value, 3);
  });
});
