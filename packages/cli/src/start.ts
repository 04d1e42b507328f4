#!/usr/bin/env node
import { access, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isApxError } from '@apx/core';
import { decryptPrivateKey, generateKeyPair } from '@apx/sign';
import { runCli } from './cli.js';
import { writeKeyPairFiles } from './commands/key-files.js';
import { processContext } from './context.js';
import { DEFAULT_PRIVATE_KEY, DEFAULT_PUBLIC_KEY } from './keyref.js';

const SAMPLES = 'configs/samples';
const ARTIFACTS = 'artifacts';

/**
 * `npm start`: the main job on the embedded defaults. A development key in keys/ (created
 * when missing, empty password unless COSIGN_PASSWORD says otherwise), the sample policies
 * compiled and signed into ./artifacts, then the worker on ./artifacts and keys/cosign.pub.
 */
async function main(): Promise<number> {
  const ctx = processContext();
  const env = { ...ctx.env };
  const say = (line: string) => ctx.stdout.write(`${line}\n`);
  const exists = await access(DEFAULT_PRIVATE_KEY).then(
    () => true,
    () => false,
  );
  if (!exists) {
    const password = env.COSIGN_PASSWORD ?? '';
    const pair = await generateKeyPair(password);
    await writeKeyPairFiles(ctx, 'keys/cosign', pair, false);
    say(`✓ Created development key ${DEFAULT_PRIVATE_KEY} and ${DEFAULT_PUBLIC_KEY} (key id ${pair.publicKey.keyId})`);
    say(
      `  password: ${env.COSIGN_PASSWORD === undefined ? 'empty (set COSIGN_PASSWORD to choose one)' : 'from COSIGN_PASSWORD'}; keys/ is git-ignored`,
    );
    env.COSIGN_PASSWORD = password;
  } else if (env.COSIGN_PASSWORD === undefined) {
    // Development keys made by npm start have an empty password; others are asked for.
    const pem = await readFile(DEFAULT_PRIVATE_KEY, 'utf8');
    if (
      await decryptPrivateKey(pem, '', DEFAULT_PRIVATE_KEY).then(
        () => true,
        () => false,
      )
    )
      env.COSIGN_PASSWORD = '';
  }
  const samples = (await readdir(SAMPLES))
    // Policies only: `<policy>.test.yaml` beside a policy holds its apx test cases.
    .filter((f) => f.endsWith('.yaml') && !f.endsWith('.test.yaml'))
    .sort()
    .map((f) => join(SAMPLES, f));
  const compiled = await runCli(['compile', '--out', ARTIFACTS, ...samples], { ...ctx, env });
  if (compiled !== 0) return compiled;
  const port = env.APX_PORT ?? '8080';
  say('');
  say(`Starting the worker on ./${ARTIFACTS} with ${DEFAULT_PUBLIC_KEY}. Try, in another terminal:`);
  say(`  curl -s localhost:${port}/readyz`);
  say(`  curl -s localhost:${port}/v1/policies`);
  say(
    `  curl -s localhost:${port}/v1/decide -d '{"policy":"pb-pay-v1","request":{"method":"GET","host":"api.example.com","path":"/v1/payments/123","ip":"198.51.100.7","headers":{"x-api-key":"demo-acme-prod-key"}}}'`,
  );
  say(`  curl -s localhost:${port}/metrics | grep apx_`);
  say('Stop with Ctrl-C. Logs follow (JSON, one object per line).');
  say('');
  return runCli(['worker'], { ...ctx, env });
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const hint = isApxError(err) && err.hint ? `; ${err.hint}` : '';
    process.stderr.write(`ERROR: ${err instanceof Error ? err.message : String(err)}${hint}\n`);
    process.exitCode = 1;
  },
);
