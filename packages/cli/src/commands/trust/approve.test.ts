import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { describeIdentityPolicy, PublicKey } from '@apx/core';
import { draftSigners } from './approve.js';

describe('apx trust approve: the signers a draft trusts', () => {
  const key = PublicKey.fromKeyObject(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey);
  const pem = key.keyObject.export({ type: 'spki', format: 'pem' }).toString();
  const identity = {
    issuer: 'https://issuer.example',
    subject: 'https://github.com/acme/policies/.github/workflows/r.yml@refs/heads/main',
  };

  it('keys and keyless identities, side by side in apx.signers', () => {
    const { keys, identities } = draftSigners(
      { apx: { signers: [{ keyId: key.keyId, publicKey: pem }, { identity }], revoked: [] } },
      'production',
    );
    assert.deepEqual(
      keys.map((k) => k.publicKey.keyId),
      [key.keyId],
    );
    assert.deepEqual(identities.map(describeIdentityPolicy), [`${identity.subject} from ${identity.issuer}`]);
    // A role that trusts identities only: no key, and no error.
    assert.deepEqual(draftSigners({ apx: { signers: [{ identity }] } }, 'production').keys, []);
    assert.deepEqual(draftSigners(undefined, 'production'), { keys: [], identities: [] });
  });

  it("keeps a retired key's window, for the check at the bundle's trusted time", () => {
    const { keys } = draftSigners(
      { apx: { signers: [{ keyId: key.keyId, publicKey: pem, notAfter: '2026-01-01T00:00:00.000Z' }], revoked: [] } },
      'production',
    );
    assert.deepEqual(keys[0]?.validity, { notAfter: new Date('2026-01-01T00:00:00.000Z') });
  });

  it('an unusable identity refuses, as workers refuse the role', () => {
    assert.throws(
      () => draftSigners({ apx: { signers: [{ identity: { issuer: identity.issuer, subjectRegExp: 'acme' } }] } }, 'production'),
      { code: 'IDENTITY_POLICY_INVALID' },
    );
  });
});
