import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, it } from 'node:test';
import { CoreErrorCode } from '../error.js';
import { PublicKey } from '../keys/public-key.js';
import { SignatureVerifier } from '../signature/verifier.js';
import { verifyArtifact } from './verified-artifact.js';

// (module (func (export "f") (result i32) i32.const 42))
const WASM = Buffer.from('0061736d010000000105016000017f03020100070501016600000a06010400412a0b', 'hex');

describe('verifyArtifact', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const verifier = new SignatureVerifier(PublicKey.fromKeyObject(publicKey));
  const sigOf = (bytes: Buffer) => Buffer.from(sign('sha256', bytes, privateKey).toString('base64'));

  it('returns a compiled module with digest and key id for a signed wasm', () => {
    const verified = verifyArtifact(WASM, sigOf(WASM), verifier, { now: () => new Date(0) });
    const instance = new WebAssembly.Instance(verified.module);
    assert.equal((instance.exports.f as () => number)(), 42);
    assert.match(verified.digest, /^sha256:[0-9a-f]{64}$/);
    assert.equal(verified.keyId, verifier.publicKey.keyId);
    assert.equal(verified.size, WASM.length);
  });

  it('rejects a flipped byte before anything is compiled', () => {
    const tampered = Buffer.from(WASM);
    tampered[tampered.length - 2] = 0x2b;
    assert.throws(() => verifyArtifact(tampered, sigOf(WASM), verifier), { code: CoreErrorCode.SIGNATURE_INVALID });
  });

  it('rejects an artifact over the cap with the runbook message, before verifying', () => {
    const big = Buffer.alloc(10 * 1024 * 1024 + 1);
    assert.throws(() => verifyArtifact(big, Buffer.from('x'), verifier), {
      code: CoreErrorCode.ARTIFACT_TOO_LARGE,
      message: 'artifact too large: 10485761 bytes (max: 10485760)',
    });
  });

  it('rejects signed bytes that are not WebAssembly, and signed bytes that do not validate', () => {
    const text = Buffer.from('#!/bin/sh\necho not wasm\n');
    assert.throws(() => verifyArtifact(text, sigOf(text), verifier), {
      code: CoreErrorCode.ARTIFACT_NOT_WASM,
      message: 'invalid artifact: not a WASM file',
    });
    const broken = Buffer.concat([WASM.subarray(0, 8), Buffer.from([0x01, 0xff])]);
    assert.throws(() => verifyArtifact(broken, sigOf(broken), verifier), { code: CoreErrorCode.ARTIFACT_INVALID_WASM });
  });

  it('refuses a signed, valid module that has a start function', () => {
    // (module (func $s) (start $s))
    const withStart = Buffer.from('0061736d01000000010401600000030201000801000a040102000b', 'hex');
    assert.throws(() => verifyArtifact(withStart, sigOf(withStart), verifier), {
      code: CoreErrorCode.ARTIFACT_INVALID_WASM,
      message: 'invalid artifact: the module has a start function',
    });
  });
});
