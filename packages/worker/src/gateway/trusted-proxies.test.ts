import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ApxError } from '@apx/core';
import { configProblems, resolveConfig } from '../config.js';
import { TrustedProxies } from './trusted-proxies.js';

function problems(env: Record<string, string>): string[] {
  try {
    resolveConfig(env);
  } catch (err) {
    const found = configProblems(err);
    assert.ok(found, `not an APX error: ${String(err)}`);
    return found.map((p: ApxError) => `${p.message}; ${p.hint ?? ''}`);
  }
  return [];
}

describe('APX_TRUSTED_PROXIES: forwarded headers believed only from the proxies listed', () => {
  const proxies = TrustedProxies.of(['10.0.0.0/8', '192.0.2.7', 'fd00::/8']);

  it('judges a caller that is not a trusted proxy by its connection address, whatever it claims', () => {
    assert.equal(proxies.clientAddress('198.51.100.1', '203.0.113.9', '203.0.113.9'), '198.51.100.1');
    assert.equal(proxies.clientAddress('::ffff:198.51.100.1', '203.0.113.9', undefined), '198.51.100.1');
    assert.equal(TrustedProxies.of([]).clientAddress('10.1.2.3', '203.0.113.9', undefined), '10.1.2.3');
  });

  it('from a trusted proxy, takes the rightmost X-Forwarded-For entry that is not a trusted proxy', () => {
    // The client forged the first entry; the proxy appended what it saw.
    assert.equal(proxies.clientAddress('10.1.2.3', '203.0.113.9, 198.51.100.4', undefined), '198.51.100.4');
    // Two proxies of ours in a row.
    assert.equal(proxies.clientAddress('10.1.2.3', '198.51.100.4, 192.0.2.7', undefined), '198.51.100.4');
    assert.equal(proxies.clientAddress('::ffff:192.0.2.7', '2001:db8::5, fd00::1', undefined), '2001:db8::5');
    assert.equal(proxies.clientAddress('10.1.2.3', '198.51.100.4:5123', undefined), '198.51.100.4');
    assert.equal(proxies.clientAddress('10.1.2.3', '[2001:db8::5]:443', undefined), '2001:db8::5');
    // X-Real-IP when there is no X-Forwarded-For.
    assert.equal(proxies.clientAddress('10.1.2.3', undefined, '198.51.100.9'), '198.51.100.9');
    // Garbage is believed no further: the proxy's own address.
    assert.equal(proxies.clientAddress('10.1.2.3', '198.51.100.4, not-an-ip', undefined), '10.1.2.3');
    // Only trusted proxies in the chain: the nearest one.
    assert.equal(proxies.clientAddress('10.1.2.3', '10.9.9.9', undefined), '10.1.2.3');
  });

  it('is read from the environment and checked, one line per bad entry', () => {
    const { config } = resolveConfig({ APX_TRUSTED_PROXIES: '10.0.0.0/8, 192.0.2.7 ,fd00::/8' });
    assert.equal(config.trustedProxies.has('10.200.0.1'), true);
    assert.equal(config.trustedProxies.has('192.0.2.8'), false);
    assert.equal(resolveConfig({}).config.trustedProxies.has('127.0.0.1'), false);
    assert.deepEqual(problems({ APX_TRUSTED_PROXIES: '10.0.0.0/33,banana,::1/129' }), [
      'invalid APX_TRUSTED_PROXIES="10.0.0.0/33,banana,::1/129": "10.0.0.0/33" has a prefix length outside 0..32; fix or remove "10.0.0.0/33"',
      'invalid APX_TRUSTED_PROXIES="10.0.0.0/33,banana,::1/129": "banana" is not an IP address or CIDR block (10.0.0.0/8, 192.0.2.7, fd00::/8); fix or remove "banana"',
      'invalid APX_TRUSTED_PROXIES="10.0.0.0/33,banana,::1/129": "::1/129" has a prefix length outside 0..128; fix or remove "::1/129"',
    ]);
  });
});

describe('the other gateway settings', () => {
  it('APX_DEFAULT_POLICY: a policy id', () => {
    assert.equal(resolveConfig({ APX_DEFAULT_POLICY: 'pb-pay-v1' }).config.defaultPolicy, 'pb-pay-v1');
    assert.deepEqual(problems({ APX_DEFAULT_POLICY: 'pb-pay-v1@1.0.0' }), [
      'invalid APX_DEFAULT_POLICY="pb-pay-v1@1.0.0"; name a policy id (pb-pay-v1), without a version',
    ]);
  });

  it('APX_DRY_RUN: true, false, or policy ids', () => {
    assert.equal(resolveConfig({}).config.dryRun, false);
    assert.equal(resolveConfig({ APX_DRY_RUN: 'true' }).config.dryRun, true);
    assert.equal(resolveConfig({ APX_DRY_RUN: 'off' }).config.dryRun, false);
    assert.deepEqual(
      resolveConfig({ APX_DRY_RUN: 'pb-pay-v1, pb-admin-v2' }).config.dryRun,
      new Set(['pb-pay-v1', 'pb-admin-v2']),
    );
    assert.deepEqual(problems({ APX_DRY_RUN: 'pb-pay-v1,Yes!' }), [
      'invalid APX_DRY_RUN="pb-pay-v1,Yes!": "Yes!" is not a policy id; use true, false, or policy ids such as pb-pay-v1,pb-admin-v2; fix or remove "Yes!"',
    ]);
  });

  it('APX_DECISION_LOG_SAMPLE: a share from 0 to 1', () => {
    assert.equal(resolveConfig({}).config.decisionLogSample, 0);
    assert.equal(resolveConfig({ APX_DECISION_LOG_SAMPLE: '0.25' }).config.decisionLogSample, 0.25);
    assert.equal(resolveConfig({ APX_DECISION_LOG_SAMPLE: '1' }).config.decisionLogSample, 1);
    for (const bad of ['2', '-0.1', '10%', 'half']) {
      assert.deepEqual(problems({ APX_DECISION_LOG_SAMPLE: bad }), [
        `invalid APX_DECISION_LOG_SAMPLE="${bad}"; use a share from 0 (off) to 1 (every decision), e.g. 0.01`,
      ]);
    }
  });
});
