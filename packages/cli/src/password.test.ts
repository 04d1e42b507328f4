// The password prompt on a real terminal: `script` (util-linux) gives apx a pty.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '@apx/core/testing/hygiene';
import { decryptPrivateKey } from '@apx/sign';

const MAIN = resolve(import.meta.dirname ?? new URL('.', import.meta.url).pathname, 'main.js');
const noScript = spawnSync('script', ['--version']).status === 0 ? false : 'util-linux script not installed';

/** Runs apx under a pty, typing each answer once its prompt has appeared. */
function runOnTerminal(cwd: string, args: string[], answers: string[]): Promise<{ status: number | null; output: string }> {
  const { COSIGN_PASSWORD: _unset, ...env } = process.env;
  const command = [process.execPath, MAIN, ...args].map((a) => `'${a}'`).join(' ');
  const child = spawn('script', ['-qfec', command, '/dev/null'], { cwd, env });
  let output = '';
  let prompts = 0;
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8');
    const seen = output.split('Enter password for private key').length - 1;
    while (prompts < seen && prompts < answers.length) child.stdin.write(`${answers[prompts++]}\r`);
  });
  return new Promise((done) => child.on('close', (status) => done({ status, output })));
}

describe('password prompt on a terminal', { skip: noScript }, () => {
  it('asks twice for a new key, echoes nothing, and encrypts with what was typed', async () => {
    const dir = tempDir('apx-tty-');
    const r = await runOnTerminal(dir, ['generate-key-pair'], ['s3cret-typed', 's3cret-typed']);
    assert.equal(r.status, 0, r.output);
    assert.match(r.output, /Enter password for private key again: /);
    assert.doesNotMatch(r.output, /s3cret-typed/);
    await decryptPrivateKey(readFileSync(join(dir, 'keys/cosign.key'), 'utf8'), 's3cret-typed', 'k');
  });

  it('refuses passwords that do not match, writing nothing', async () => {
    const dir = tempDir('apx-tty-');
    const r = await runOnTerminal(dir, ['generate-key-pair'], ['one', 'two']);
    assert.equal(r.status, 1);
    assert.match(r.output, /ERROR: passwords do not match/);
    assert.equal(spawnSync('test', ['-e', join(dir, 'keys/cosign.key')]).status, 1);
  });
});
