import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CoreErrorCode } from '../error.js';
import { decodeSignatureFile, derEcdsaLength, ecdsaSignatureToDer, p1363ToDer } from './encoding.js';

const der = (hex: string) => Buffer.from(hex.replace(/\s/g, ''), 'hex');

describe('signature file decoding', () => {
  it('decodes base64 with or without a trailing newline, as Go does', () => {
    const raw = Buffer.from([0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x02]);
    assert.deepEqual(decodeSignatureFile(Buffer.from(raw.toString('base64'))), raw);
    assert.deepEqual(decodeSignatureFile(Buffer.from(`${raw.toString('base64')}\r\n`)), raw);
  });

  it('takes non-base64 content as raw bytes (cosign --b64=false)', () => {
    const raw = Buffer.from([0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x02]);
    assert.deepEqual(decodeSignatureFile(raw), raw);
  });

  it('refuses unpadded base64 (Go StdEncoding requires padding) and junk text, saying why', () => {
    assert.throws(() => decodeSignatureFile(Buffer.from('MEQCIA')), {
      code: CoreErrorCode.SIGNATURE_MALFORMED,
      message: 'malformed signature: not valid base64 (length 6 is not a multiple of 4 (padding missing?))',
    });
    assert.throws(() => decodeSignatureFile(Buffer.from('MEQC IA==')), {
      message: 'malformed signature: not valid base64 (unexpected character " " at offset 4)',
    });
  });

  it('rejects an empty signature with SIGNATURE_MALFORMED', () => {
    assert.throws(() => decodeSignatureFile(Buffer.alloc(0)), { code: CoreErrorCode.SIGNATURE_MALFORMED });
  });
});

describe('ECDSA DER handling', () => {
  it('measures a minimal DER SEQUENCE of two INTEGERs', () => {
    assert.equal(derEcdsaLength(der('3006 020101 020102')), 8);
  });

  it('refuses non-minimal integers and long-form lengths that fit the short form', () => {
    assert.equal(derEcdsaLength(der('3007 02020001 020102')), undefined);
    assert.equal(derEcdsaLength(der('308106 020101 020102')), undefined);
  });

  it('refuses a SEQUENCE with a third element', () => {
    assert.equal(derEcdsaLength(der('3009 020101 020102 020103')), undefined);
  });

  it('rejects trailing bytes after DER with a precise reason', () => {
    assert.throws(() => ecdsaSignatureToDer(der('3006 020101 020102 00')), {
      code: CoreErrorCode.SIGNATURE_MALFORMED,
      message: 'malformed signature: 1 trailing byte after the DER ECDSA signature',
    });
  });

  it('re-encodes IEEE P1363 r||s as DER, keeping integers positive and minimal', () => {
    const p1363 = Buffer.concat([Buffer.alloc(31), Buffer.of(0x05), Buffer.of(0x80), Buffer.alloc(31, 0x01)]);
    const out = p1363ToDer(p1363);
    assert.equal(derEcdsaLength(out), out.length);
    assert.deepEqual(out.subarray(0, 5), der('3026 020105'));
    assert.deepEqual(out.subarray(5, 8), der('022100'));
  });

  it('rejects odd-length non-DER bytes', () => {
    assert.throws(() => ecdsaSignatureToDer(Buffer.alloc(63, 1)), { code: CoreErrorCode.SIGNATURE_MALFORMED });
  });
});
