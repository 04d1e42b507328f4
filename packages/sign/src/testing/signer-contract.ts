// One contract every signer runs (file, Vault transit, AWS KMS, and the ones to come): its
// signatures verify with APX's verifier and with openssl against the public key it reports.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { SignatureVerifier } from '@apx/core';
import { toolMissing } from '@apx/core/testing/tools';
import type { Signer } from '../signer/signer.js';

const noOpenssl = toolMissing('openssl');

export function runSignerContract(label: string, open: () => Promise<{ signer: Signer; cleanup(): Promise<void> }>): void {
  describe(`signer contract: ${label}`, () => {
    it('reports a stable public key and signs so that APX verifies, and only that message', async () => {
      const { signer, cleanup } = await open();
      try {
        const key = await signer.publicKey();
        assert.equal((await signer.publicKey()).keyId, key.keyId);
        const message = Buffer.from(`contract message for ${label}`);
        const result = await signer.sign(message);
        assert.equal(result.publicKey.keyId, key.keyId);
        const verifier = new SignatureVerifier(key);
        verifier.verify(message, result.signature);
        assert.throws(() => verifier.verify(Buffer.from('another message'), result.signature), { code: 'SIGNATURE_INVALID' });
        const big = Buffer.alloc(1024 * 1024, 7);
        verifier.verify(big, (await signer.sign(big)).signature);
      } finally {
        await cleanup();
      }
    });

    it('produces signatures openssl verifies against the reported public key', {
      skip: noOpenssl,
    }, async (t) => {
      const { signer, cleanup } = await open();
      const dir = mkdtempSync(join(tmpdir(), 'apx-signer-'));
      t.after(() => rmSync(dir, { recursive: true, force: true }));
      try {
        const message = Buffer.from(`openssl checks ${label}`);
        writeFileSync(join(dir, 'msg'), message);
        writeFileSync(join(dir, 'pub.pem'), (await signer.publicKey()).toPem());
        writeFileSync(join(dir, 'sig.der'), (await signer.sign(message)).signature);
        const r = spawnSync('openssl', ['dgst', '-sha256', '-verify', 'pub.pem', '-signature', 'sig.der', 'msg'], {
          cwd: dir,
          encoding: 'utf8',
        });
        assert.equal(r.status, 0, r.stderr);
      } finally {
        await cleanup();
      }
    });
  });
}
