import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resolveConfig } from './config.js';

describe('worker configuration', () => {
  it('runs on safe embedded defaults', () => {
    const { config, warnings } = resolveConfig({});
    assert.equal(config.env, 'dev');
    assert.equal(config.store, './artifacts');
    assert.equal(config.publicKey, 'keys/cosign.pub');
    assert.equal(config.strict, true);
    assert.equal(config.allowList, undefined);
    assert.deepEqual(warnings, []);
  });

  it('lets flags override the environment', () => {
    const { config } = resolveConfig({ APX_PORT: '9000', APX_STORE: 'gs://a/b' }, { port: '9100' });
    assert.equal(config.port, 9100);
    assert.equal(config.store, 'gs://a/b');
  });

  it("reads the runbook's ALLOWED_POLICY_VERSIONS and APX_POLICIES", () => {
    const { config } = resolveConfig({ ALLOWED_POLICY_VERSIONS: '1.0.0,1.1.0', APX_POLICIES: 'pb-pay-v1@1.0.0, pb-admin' });
    assert.ok(config.allowList?.admits('pb-pay-v1', '1.1.0'));
    assert.deepEqual(config.policies, [
      { policyId: 'pb-pay-v1', version: '1.0.0' },
      { policyId: 'pb-admin', version: undefined },
    ]);
  });

  it('warns when strict mode is off outside production', () => {
    const { warnings } = resolveConfig({ APX_STRICT_MODE: 'false' });
    assert.match(warnings[0] ?? '', /strict mode disabled/);
  });

  it('refuses unsafe production settings', () => {
    assert.throws(() => resolveConfig({ APX_ENV: 'production', APX_STRICT_MODE: 'false', ALLOWED_POLICY_VERSIONS: '1.0.0' }), {
      code: 'CONFIG_UNSAFE',
      message: 'refusing to start in production with strict mode disabled',
    });
    assert.throws(() => resolveConfig({ APX_ENV: 'production' }), {
      code: 'CONFIG_UNSAFE',
      message: 'refusing to start in production without an allow-list',
    });
    assert.throws(
      () => resolveConfig({ APX_ENV: 'production', ALLOWED_POLICY_VERSIONS: '1.0.0', APX_REQUIRE_BINDING: 'false' }),
      {
        code: 'CONFIG_UNSAFE',
        message: 'refusing to start in production without signed bindings',
      },
    );
    const prod = resolveConfig({ APX_ENV: 'production', ALLOWED_POLICY_VERSIONS: '1.0.0', APX_STATE_DIR: '/var/lib/apx' }).config;
    assert.equal(prod.env, 'production');
    assert.equal(prod.requireBinding, true);
    assert.equal(prod.stateDir, '/var/lib/apx');
    assert.equal(resolveConfig({ APX_ENV: 'staging', APX_STATE_DIR: '/var/lib/apx' }).config.requireBinding, true);
    assert.equal(resolveConfig({}).config.requireBinding, false);
  });

  it('requires APX_STATE_DIR (persistent rollback floors) in staging and production', () => {
    for (const env of ['staging', 'production']) {
      assert.throws(
        () => resolveConfig({ APX_ENV: env, ALLOWED_POLICY_VERSIONS: '1.0.0' }),
        (err: Error & { code?: string; hint?: string }) => {
          assert.equal(err.code, 'CONFIG_UNSAFE');
          assert.equal(err.message, `refusing to start in ${env} without APX_STATE_DIR`);
          assert.match(err.hint ?? '', /set APX_STATE_DIR/);
          return true;
        },
      );
    }
    assert.equal(resolveConfig({}).config.stateDir, undefined);
  });

  it('reads APX_ALLOW_ROLLBACK as exact references', () => {
    const { config } = resolveConfig({ APX_ALLOW_ROLLBACK: 'pb-pay-v1@1.0.0, pb-admin@2.0.0' });
    assert.deepEqual([...config.allowRollback], ['pb-pay-v1@1.0.0', 'pb-admin@2.0.0']);
    assert.equal(resolveConfig({}).config.allowRollback.size, 0);
    assert.throws(() => resolveConfig({ APX_ALLOW_ROLLBACK: 'pb-pay-v1@^1.0.0' }), {
      code: 'CONFIG_INVALID',
      message: 'invalid APX_ALLOW_ROLLBACK="pb-pay-v1@^1.0.0"',
    });
  });

  it('names malformed settings', () => {
    assert.throws(() => resolveConfig({ APX_PORT: 'http' }), { code: 'CONFIG_INVALID', message: 'invalid APX_PORT="http"' });
    assert.throws(() => resolveConfig({ APX_ENV: 'qa' }), { message: 'invalid APX_ENV="qa"' });
    assert.throws(() => resolveConfig({ APX_POLICIES: 'PB@x' }), { message: 'invalid APX_POLICIES="PB@x"' });
  });
});
