import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, it } from 'node:test';
import { PublicKey } from '../keys/public-key.js';
import { Keyring } from './keyring.js';
import { RevocationList } from './revocations.js';

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const keyring = Keyring.single(PublicKey.fromKeyObject(publicKey));
const signed = (list: RevocationList) => {
  const text = Buffer.from(JSON.stringify(list.toJSON()));
  return { text, sig: Buffer.from(sign('sha256', text, privateKey).toString('base64')) };
};
const now = new Date('2026-11-24T00:00:00Z');

describe('RevocationList', () => {
  const v1 = RevocationList.empty().add({ ref: 'pb-pay-v1@1.0.0', reason: 'leak', revokedAt: now.toISOString() }, now);
  const v2 = v1.add({ digest: `sha256:${'a'.repeat(64)}`, reason: 'bad build', revokedAt: now.toISOString() }, now);

  it('finds revoked references, digests and keys', () => {
    const v3 = v2.add({ keyId: 'b'.repeat(64), reason: 'stolen', revokedAt: now.toISOString() }, now);
    assert.equal(v3.version, 3);
    assert.equal(v3.find('pb-pay-v1@1.0.0', undefined, null)?.reason, 'leak');
    assert.equal(v3.find('x@1.0.0', `sha256:${'a'.repeat(64)}`, null)?.reason, 'bad build');
    assert.equal(v3.find('x@1.0.0', undefined, 'b'.repeat(64))?.reason, 'stolen');
    assert.equal(v3.find('pb-pay-v1@1.0.1', undefined, 'c'.repeat(64)), undefined);
    assert.equal(RevocationList.refusal(v1.entries[0] as never).code, 'REVOKED');
  });

  it('accepts a list signed by the keyring, and refuses forged, tampered and older lists', () => {
    const { text, sig } = signed(v2);
    assert.equal(RevocationList.verify(text, sig, keyring, v1, 'r.json').version, 2);
    assert.throws(() => RevocationList.verify(signed(v1).text, signed(v1).sig, keyring, v2, 'r.json'), {
      code: 'REVOCATION_LIST_INVALID',
      message: /version 1 is older than the list held \(version 2\)/,
    });
    const tampered = Buffer.from(text.toString().replace('bad build', 'good build'));
    assert.throws(() => RevocationList.verify(tampered, sig, keyring, v1, 'r.json'), { message: /signature does not verify/ });
    const stranger = Keyring.single(PublicKey.fromKeyObject(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey));
    assert.throws(() => RevocationList.verify(text, sig, stranger, v1, 'r.json'), { message: /signature does not verify/ });
  });

  it('names malformed entries', () => {
    const doc = (entries: unknown[]) =>
      JSON.stringify({ apiVersion: 'apx/v1', kind: 'RevocationList', version: 1, issuedAt: now.toISOString(), entries });
    assert.throws(() => RevocationList.parse(doc([{ ref: 'a@1.0.0', digest: 'sha256:x', reason: 'r', revokedAt: 'x' }])), {
      message: /entries\[0\] must name exactly one of ref, digest, keyId/,
    });
    assert.throws(() => RevocationList.parse(doc([{ ref: 'a@1.0.0', revokedAt: now.toISOString() }])), {
      message: /entries\[0\]\.reason is required/,
    });
    assert.throws(() => RevocationList.parse(doc([{ digest: 'md5:abc', reason: 'r', revokedAt: now.toISOString() }])), {
      message: /is not a reference, sha256 digest or key id/,
    });
  });
});
