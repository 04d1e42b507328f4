// APX_DRAIN_SECONDS (issue 16): its default per environment, its bounds with one clear line
// per problem, and an in-process drain: /readyz at 503 and decisions still answered while
// draining, then closed.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { configProblems, resolveConfig } from './config.js';
import { startWorker } from './worker.js';

const problemsOf = (env: Record<string, string>): string[] => {
  try {
    resolveConfig(env);
  } catch (err) {
    return (configProblems(err) ?? []).map((p) => p.message);
  }
  return [];
};

describe('APX_DRAIN_SECONDS', () => {
  const staging = { APX_ENV: 'staging', APX_STATE_DIR: tmpdir() };

  it('defaults to 0 in dev and 5 s in staging and production', () => {
    assert.equal(resolveConfig({}).config.drainMs, 0);
    assert.equal(resolveConfig(staging).config.drainMs, 5000);
    const production = { ...staging, APX_ENV: 'production', ALLOWED_POLICY_VERSIONS: '1.0.0' };
    assert.equal(resolveConfig(production).config.drainMs, 5000);
    assert.equal(resolveConfig({ ...production, APX_DRAIN_SECONDS: '0' }).config.drainMs, 0);
    assert.equal(resolveConfig({ APX_DRAIN_SECONDS: '30' }).config.drainMs, 30_000);
    assert.equal(resolveConfig({}, { 'drain-seconds': '12' }).config.drainMs, 12_000);
  });

  it('refuses what is not a whole number of seconds from 0 to 600, one line each', () => {
    assert.deepEqual(problemsOf({ APX_DRAIN_SECONDS: '601' }), ['invalid APX_DRAIN_SECONDS="601"']);
    assert.deepEqual(problemsOf({ APX_DRAIN_SECONDS: '-1' }), ['invalid APX_DRAIN_SECONDS="-1"']);
    // Every problem of a start, one line each.
    assert.deepEqual(problemsOf({ APX_DRAIN_SECONDS: '5s', APX_PORT: 'x' }), [
      'invalid APX_PORT="x"',
      'invalid APX_DRAIN_SECONDS="5s"',
    ]);
    try {
      resolveConfig({ APX_DRAIN_SECONDS: '5s' });
      assert.fail('accepted 5s');
    } catch (err) {
      const [problem] = configProblems(err) ?? [];
      assert.match(
        problem?.hint ?? '',
        /whole number of seconds from 0 to 600 \(0 closes at once\), without a unit \(5 means seconds\)/,
      );
    }
  });
});

describe('drain (in process)', () => {
  it('answers /readyz 503 and still decides while draining, then closes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'apx-drain-'));
    try {
      const { config } = resolveConfig({ APX_PORT: '0', APX_RELOAD_INTERVAL: '0', APX_STORE: dir, APX_DRAIN_SECONDS: '600' });
      const lines: string[] = [];
      const worker = await startWorker(config, [], {
        env: {},
        cwd: dir,
        logDestination: { write: (l: string) => lines.push(l) },
      });
      assert.equal(worker.draining, false);
      const drained = worker.drain();
      assert.equal(worker.draining, true);
      assert.equal(worker.drain(), drained, 'a second drain() is the same drain');
      const ready = await fetch(`${worker.url}/readyz`);
      assert.equal(ready.status, 503);
      assert.equal(ready.headers.get('connection'), 'close');
      assert.deepEqual(await ready.json(), { status: 'draining', reason: 'the worker is stopping (SIGTERM): draining' });
      // Still served: a decision for a policy this worker does not have is answered as before.
      const decide = await fetch(`${worker.url}/v1/decide`, { method: 'POST', body: '{"policy":"pb-none-v1","request":{}}' });
      assert.notEqual(decide.status, 503);
      assert.ok(lines.some((l) => l.includes('draining: /readyz answers 503')));
      await worker.stop();
      await assert.rejects(fetch(`${worker.url}/healthz`));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
