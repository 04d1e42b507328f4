import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { PublicKey } from '../keys/public-key.js';
import { Keyring } from './keyring.js';

const key = () => PublicKey.fromKeyObject(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey);
const entry = (k: PublicKey, extra: Record<string, unknown>) => ({
  keyId: k.keyId,
  publicKey: k.toPem(),
  environments: ['staging', 'production'],
  status: 'active',
  validFrom: '2026-01-01T00:00:00Z',
  ...extra,
});
const doc = (keys: unknown[]) => JSON.stringify({ apiVersion: 'apx/v1', kind: 'Keyring', version: 3, keys });

describe('Keyring', () => {
  const prod = key();
  const dev = key();
  const old = key();
  const bad = key();
  const ring = Keyring.parse(
    doc([
      entry(prod, {}),
      entry(dev, { environments: ['dev'] }),
      entry(old, { status: 'retired', validUntil: '2026-06-01T00:00:00Z' }),
      entry(bad, { status: 'compromised', compromisedAt: '2026-09-01T00:00:00Z' }),
    ]),
    'ring.json',
  );
  const now = new Date('2026-11-24T00:00:00Z');
  const at = (id: string) => ring.entries.find((e) => e.keyId === id) ?? assert.fail('missing');

  it('selects the key a bundle hint names, in hex or base64, else every key', () => {
    assert.deepEqual(
      ring.candidates(prod.keyId).map((e) => e.keyId),
      [prod.keyId],
    );
    assert.deepEqual(
      ring.candidates(Buffer.from(prod.keyId, 'hex').toString('base64')).map((e) => e.keyId),
      [prod.keyId],
    );
    assert.equal(ring.candidates(undefined).length, 4);
  });

  it('admits an active key in its environments only (a development key is refused in production)', () => {
    Keyring.admit(at(prod.keyId), 'production', undefined, now);
    assert.throws(() => Keyring.admit(at(dev.keyId), 'production', undefined, now), {
      code: 'KEY_ENVIRONMENT',
      message: `key ${dev.keyId.slice(0, 12)} may not sign for production (it signs for: dev)`,
    });
  });

  it('keeps a retired key valid for what it signed while valid, and no later', () => {
    Keyring.admit(at(old.keyId), 'production', new Date('2026-05-01T00:00:00Z'), now);
    assert.throws(() => Keyring.admit(at(old.keyId), 'production', new Date('2026-07-01T00:00:00Z'), now), {
      code: 'KEY_NOT_VALID',
    });
    assert.throws(() => Keyring.admit(at(old.keyId), 'production', undefined, now), { code: 'KEY_NOT_VALID' });
  });

  it('trusts nothing a compromised key signed', () => {
    assert.throws(() => Keyring.admit(at(bad.keyId), 'production', new Date('2026-02-01T00:00:00Z'), now), {
      code: 'KEY_COMPROMISED',
      message: `key ${bad.keyId.slice(0, 12)} is compromised (since 2026-09-01T00:00:00.000Z): its signatures are no longer trusted`,
    });
  });

  it('names what is wrong with a malformed keyring', () => {
    const k = key();
    const cases: Array<[unknown[], RegExp]> = [
      [[{ ...entry(k, {}), keyId: 'ab' }], /keys\[0\]\.keyId does not match its public key/],
      [[entry(k, { extra: 1 })], /keys\[0\]\.extra is not a keyring field/],
      [[entry(k, { environments: ['qa'] })], /keys\[0\]\.environments must list/],
      [[entry(k, { status: 'retired' })], /keys\[0\]\.validUntil is required/],
      [[entry(k, {}), entry(k, {})], /keys\[1\] repeats key/],
      [[], /keys must be a non-empty list/],
    ];
    for (const [keys, message] of cases)
      assert.throws(() => Keyring.parse(doc(keys), 'k.json'), { code: 'KEYRING_INVALID', message });
    assert.throws(() => Keyring.parse('{"kind":"Other"}', 'k.json'), {
      message: /expected apiVersion "apx\/v1" and kind "Keyring"/,
    });
  });
});

describe('docs/schemas/keyring.schema.json', () => {
  it('accepts what Keyring writes and refuses what Keyring.parse refuses', async () => {
    const { readFileSync } = await import('node:fs');
    // ajv is CommonJS with a default export: load it as such.
    const require = (await import('node:module')).createRequire(import.meta.url);
    type Validator = ((doc: unknown) => boolean) & { errors?: unknown };
    type AjvLike = { compile(schema: unknown): Validator };
    const Ajv = (require('ajv/dist/2020') as { default: new (o: object) => AjvLike }).default;
    const addFormats = (require('ajv-formats') as { default: (ajv: AjvLike) => void }).default;
    const ajv = new Ajv({ allErrors: true });
    addFormats(ajv);
    const validate = ajv.compile(JSON.parse(readFileSync('docs/schemas/keyring.schema.json', 'utf8')));
    const a = key();
    const b = key();
    const rotated = Keyring.single(a).rotate(b, ['staging', 'production'], new Date('2026-11-24T00:00:00Z'));
    assert.ok(validate(rotated.toJSON()), JSON.stringify(validate.errors));
    assert.equal(Keyring.parse(JSON.stringify(rotated.toJSON())).version, 1);
    const retiredWithoutEnd = { ...(rotated.toJSON() as { keys: Array<Record<string, unknown>> }) };
    retiredWithoutEnd.keys = retiredWithoutEnd.keys.map((k) => (k.status === 'retired' ? { ...k, validUntil: undefined } : k));
    assert.equal(validate(JSON.parse(JSON.stringify(retiredWithoutEnd))), false);
    assert.throws(() => Keyring.parse(JSON.stringify(retiredWithoutEnd)), { code: 'KEYRING_INVALID' });
  });
});
