#!/usr/bin/env node
import { access, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isApxError, parseBundle, SignatureVerifier, verifyBundle } from '@apx/core';
import { FileSigner, generateKeyPair, signBlob } from '@apx/sign';
import { writeKeyPairFiles } from './commands/key-files.js';
import { processContext } from './context.js';
import { DEFAULT_PRIVATE_KEY, DEFAULT_PUBLIC_KEY } from './keyref.js';

/**
 * `npm start`: the main job on the embedded defaults. Until the worker exists it walks
 * through the signing core end to end: a development key in keys/ (created if missing),
 * a signature and a bundle over a sample artifact, verification, and the rejection a
 * tampered artifact gets.
 */
async function main(): Promise<void> {
  const ctx = processContext();
  const say = (line: string) => ctx.stdout.write(`${line}\n`);
  // A development key may have an empty password (the runbook: optional for dev keys).
  const password = ctx.env.COSIGN_PASSWORD ?? '';
  const exists = await access(DEFAULT_PRIVATE_KEY).then(
    () => true,
    () => false,
  );
  if (!exists) {
    const pair = await generateKeyPair(password);
    await writeKeyPairFiles(ctx, 'keys/cosign', pair, false);
    say(`✓ Created development key ${DEFAULT_PRIVATE_KEY} (public: ${DEFAULT_PUBLIC_KEY}, key id ${pair.publicKey.keyId})`);
    say(
      `  password: ${ctx.env.COSIGN_PASSWORD === undefined ? 'empty (set COSIGN_PASSWORD to choose one)' : 'from COSIGN_PASSWORD'}`,
    );
  } else {
    say(`✓ Using development key ${DEFAULT_PRIVATE_KEY}`);
  }
  const signer = await FileSigner.open(DEFAULT_PRIVATE_KEY, async () => password, DEFAULT_PRIVATE_KEY);

  const dir = await mkdtemp(join(tmpdir(), 'apx-demo-'));
  try {
    const artifact = Buffer.concat([
      Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]),
      Buffer.from('apx demo artifact'),
    ]);
    const signed = await signBlob(signer, artifact);
    await writeFile(join(dir, 'demo.wasm'), artifact);
    await writeFile(join(dir, 'demo.wasm.sig'), signed.signatureFileContent);
    await writeFile(join(dir, 'demo.wasm.sigstore.json'), signed.bundleJson);
    say(`✓ Signed:    demo.wasm -> demo.wasm.sig, demo.wasm.sigstore.json (in ${dir})`);

    const verifier = new SignatureVerifier(signed.publicKey);
    verifier.verify(artifact, Buffer.from(signed.signatureFileContent));
    verifyBundle(parseBundle(signed.bundleJson), artifact, verifier);
    say('✓ Verified:  signature and bundle (Verified OK)');

    const tampered = Buffer.from(artifact);
    tampered.writeUInt8((tampered.at(-1) ?? 0) ^ 0x01, tampered.length - 1);
    try {
      verifier.verify(tampered, Buffer.from(signed.signatureFileContent));
      throw new Error('a tampered artifact verified: this must never happen');
    } catch (err) {
      if (!isApxError(err)) throw err;
      say(`✓ Rejected:  one flipped byte -> ERROR: ${err.message}`);
    }
    say('');
    say('Next: sign and verify your own files with');
    say('  ./tools/cli/apx sign-blob --key keys/cosign.key --output-signature FILE.sig --bundle FILE.sigstore.json FILE');
    say('  ./tools/cli/apx verify-blob --key keys/cosign.pub --signature FILE.sig FILE');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  const hint = isApxError(err) && err.hint ? `; ${err.hint}` : '';
  process.stderr.write(`ERROR: ${err instanceof Error ? err.message : String(err)}${hint}\n`);
  process.exitCode = 1;
});
