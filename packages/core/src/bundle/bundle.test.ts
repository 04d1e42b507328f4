import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { describe, it } from 'node:test';
import { bundleToJSON, toDSSEBundle } from '@sigstore/bundle';
import { dsse } from '@sigstore/core';
import { CoreErrorCode } from '../error.js';
import { PublicKey } from '../keys/public-key.js';
import { SignatureVerifier } from '../signature/verifier.js';
import { parseBundle } from './parse.js';
import { IN_TOTO_PAYLOAD_TYPE, IN_TOTO_STATEMENT_V1, verifyBundle } from './verify.js';

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const verifier = new SignatureVerifier(PublicKey.fromKeyObject(publicKey));
const artifact = Buffer.from('\0asm\x01\0\0\0 policy');

function dsseBundle(statement: unknown, payloadType = IN_TOTO_PAYLOAD_TYPE): string {
  const payload = Buffer.from(JSON.stringify(statement));
  const signature = sign('sha256', dsse.preAuthEncoding(payloadType, payload), privateKey);
  const bundle = toDSSEBundle({ artifact: payload, artifactType: payloadType, signature, keyHint: verifier.publicKey.keyId });
  return JSON.stringify(bundleToJSON(bundle));
}

const statementFor = (bytes: Buffer) => ({
  _type: IN_TOTO_STATEMENT_V1,
  subject: [{ name: 'pb-pay-v1@1.0.0', digest: { sha256: createHash('sha256').update(bytes).digest('hex') } }],
  predicateType: 'https://apx.dev/policy/v1',
  predicate: {},
});

describe('DSSE bundles', () => {
  it('verifies the signature over PAE and returns the statement naming the artifact', () => {
    const result = verifyBundle(parseBundle(dsseBundle(statementFor(artifact))), artifact, verifier);
    assert.equal(result.format, 'sigstore');
    assert.deepEqual(result.statement?.subject, statementFor(artifact).subject);
  });

  it('rejects a statement whose subject is another artifact', () => {
    const other = Buffer.from('another artifact');
    assert.throws(() => verifyBundle(parseBundle(dsseBundle(statementFor(other))), artifact, verifier), {
      code: CoreErrorCode.BUNDLE_DIGEST_MISMATCH,
      message: /^bundle statement does not match the artifact: no subject has sha256:/,
    });
  });

  it('rejects an envelope whose payload was changed after signing', () => {
    const json = JSON.parse(dsseBundle(statementFor(artifact)));
    const statement = statementFor(artifact);
    statement.predicateType = 'https://evil.example/v1';
    json.dsseEnvelope.payload = Buffer.from(JSON.stringify(statement)).toString('base64');
    assert.throws(() => verifyBundle(parseBundle(JSON.stringify(json)), artifact, verifier), {
      code: CoreErrorCode.SIGNATURE_INVALID,
    });
  });

  it('rejects payload types other than in-toto', () => {
    assert.throws(() => verifyBundle(parseBundle(dsseBundle(statementFor(artifact), 'text/plain')), artifact, verifier), {
      code: CoreErrorCode.BUNDLE_INVALID,
    });
  });
});

describe('parseBundle', () => {
  it('names what is wrong with files that are not bundles', () => {
    assert.throws(() => parseBundle('not json', 'x.json'), {
      code: CoreErrorCode.BUNDLE_INVALID,
      message: 'invalid bundle x.json: not JSON',
    });
    assert.throws(() => parseBundle('[]', 'x.json'), { message: 'invalid bundle x.json: not a JSON object' });
    assert.throws(() => parseBundle('{"base64Signature":"***"}', 'x.json'), {
      message: 'invalid bundle x.json: base64Signature is not valid base64',
    });
    assert.throws(() => parseBundle('{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}', 'x.json'), {
      code: CoreErrorCode.BUNDLE_INVALID,
    });
  });
});
