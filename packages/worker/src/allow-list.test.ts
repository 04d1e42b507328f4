import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AllowList } from './allow-list.js';

describe('AllowList', () => {
  it("admits the runbook's exact versions and refuses others with the runbook's words", () => {
    const list = AllowList.parse('1.0.0,1.1.0');
    assert.ok(list.admits('pb-pay-v1', '1.0.0'));
    assert.ok(list.admits('pb-pay-v1', '1.1.0'));
    assert.equal(list.admits('pb-pay-v1', '1.2.0'), false);
    assert.equal(list.rejection('pb-pay-v1', '1.2.0').message, 'policy version 1.2.0 not in allowed list: [1.0.0 1.1.0]');
    assert.equal(list.rejection('pb-pay-v1', '1.2.0').code, 'VERSION_NOT_ALLOWED');
  });

  it('scopes per-policy entries and ranges to their policy', () => {
    const list = AllowList.parse('pb-pay-v1@1.1.0, pb-admin@^2.0.0, >=3.0.0 <4.0.0');
    assert.ok(list.admits('pb-pay-v1', '1.1.0'));
    assert.equal(list.admits('pb-admin', '1.1.0'), false);
    assert.ok(list.admits('pb-admin', '2.7.1'));
    assert.equal(list.admits('pb-pay-v1', '2.7.1'), false);
    assert.ok(list.admits('anything', '3.9.0'));
  });

  it('refuses malformed and empty lists', () => {
    assert.throws(() => AllowList.parse('1.0.0,banana'), {
      code: 'CONFIG_INVALID',
      message: 'invalid entry "banana" in ALLOWED_POLICY_VERSIONS',
    });
    assert.throws(() => AllowList.parse(' , '), { code: 'CONFIG_INVALID' });
  });
});
