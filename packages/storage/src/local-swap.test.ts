// LocalStore.swap across processes and after crashes: the in-process contract cannot show
// that the lock file serializes separate processes, nor that a crashed writer's lock is
// broken instead of blocking every later publish.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { StorageError, StorageErrorCode } from './error.js';
import { LocalStore } from './local.js';

const LOCAL = pathToFileURL(join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, 'local.js')).href;
const NAME = 'tuf/timestamp.json';
const ROUNDS = 12;

// Each round: wait for the parent's go-<r> file, then swap from the token in expected-<r>.
// Both children wake on the same file, so their swaps overlap as closely as the OS allows.
const CHILD = `
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LocalStore } from ${JSON.stringify(LOCAL)};
const [dir, id, rounds] = process.argv.slice(-3);
const store = new LocalStore({ root: join(dir, 'store') });
for (let r = 1; r <= Number(rounds); r++) {
  while (!existsSync(join(dir, 'go-' + r))) await new Promise((w) => setTimeout(w, 1));
  const expected = readFileSync(join(dir, 'expected-' + r), 'utf8');
  try {
    const token = await store.swap(${JSON.stringify(NAME)}, Buffer.from(JSON.stringify({ r, id })), expected);
    console.log(r + ' won ' + token);
  } catch (err) {
    console.log(r + ' ' + (err.code === 'CONFLICT' ? 'conflict' : 'error ' + err.message));
  }
}`;

/** A child's result lines, by round. */
function startChild(dir: string, id: string): { child: ChildProcess; line: (round: number) => Promise<string> } {
  const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD, dir, id, String(ROUNDS)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const waiting = new Map<number, { resolve: (l: string) => void; reject: (e: Error) => void }>();
  const seen = new Map<number, string>();
  let exited: Error | undefined;
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (l) => {
    const round = Number(l.split(' ')[0]);
    seen.set(round, l);
    waiting.get(round)?.resolve(l);
  });
  child.once('exit', (code) => {
    exited = new Error(`child ${id} exited (${code})`);
    for (const w of waiting.values()) w.reject(exited);
  });
  const line = (round: number) =>
    new Promise<string>((resolve, reject) => {
      const done = seen.get(round);
      if (done) return resolve(done);
      if (exited) return reject(exited);
      waiting.set(round, { resolve, reject });
    });
  return { child, line };
}

describe('LocalStore.swap across processes', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'apx-swap-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it(`two processes swapping from the same token: exactly one wins, ${ROUNDS} rounds`, async () => {
    const store = new LocalStore({ root: join(dir, 'store') });
    await store.swap(NAME, Buffer.from('{"r":0}'), null);
    const a = startChild(dir, 'a');
    const b = startChild(dir, 'b');
    try {
      for (let r = 1; r <= ROUNDS; r++) {
        const current = await store.getVersioned(NAME);
        assert.ok(current);
        await writeFile(join(dir, `expected-${r}`), current.token);
        await writeFile(join(dir, `go-${r}`), '');
        const lines = [await a.line(r), await b.line(r)];
        const won = lines.filter((l) => l.split(' ')[1] === 'won');
        assert.equal(won.length, 1, `round ${r}: ${lines.join(' | ')}`);
        assert.ok(
          lines.some((l) => l === `${r} conflict`),
          `round ${r}: ${lines.join(' | ')}`,
        );
        // The stored object is the winner's, under the token the winner was given.
        const after = await store.getVersioned(NAME);
        const winner = lines.indexOf(won[0] as string) === 0 ? 'a' : 'b';
        assert.deepEqual(JSON.parse(after?.bytes.toString('utf8') ?? '{}'), { r, id: winner });
        assert.equal(after?.token, (won[0] as string).split(' ')[2]);
      }
    } finally {
      a.child.kill();
      b.child.kill();
    }
    // No lock or temporary file is left behind.
    assert.deepEqual(await readdir(join(dir, 'store', 'tuf')), ['timestamp.json']);
  });
});

describe('LocalStore.swap lock files', () => {
  const lockOf = (root: string) => join(root, 'tuf', '.timestamp.json.lock');
  const setUp = async () => {
    const root = await mkdtemp(join(tmpdir(), 'apx-lock-'));
    const store = new LocalStore({ root, lockWaitMs: 300 });
    const token = await store.swap(NAME, Buffer.from('v1'), null);
    return { root, store, token };
  };
  const lockFile = (pid: number, host: string, time: Date) =>
    JSON.stringify({ pid, hostname: host, time: time.toISOString(), nonce: 'left-behind' });

  it('breaks a lock left by a process of this host that no longer exists', async () => {
    const { root, store, token } = await setUp();
    const dead = spawnSync(process.execPath, ['-e', '']).pid;
    assert.ok(dead);
    await writeFile(lockOf(root), lockFile(dead, hostname(), new Date()));
    const next = await store.swap(NAME, Buffer.from('v2'), token);
    assert.deepEqual(await store.getVersioned(NAME), { bytes: Buffer.from('v2'), token: next });
    assert.deepEqual(await readdir(join(root, 'tuf')), ['timestamp.json']);
    await rm(root, { recursive: true, force: true });
  });

  it('breaks a lock older than 30 s, even from another host', async () => {
    const { root, store, token } = await setUp();
    await writeFile(lockOf(root), lockFile(process.pid, 'other-host.example', new Date(Date.now() - 60_000)));
    await store.swap(NAME, Buffer.from('v2'), token);
    assert.deepEqual(await store.get(NAME), Buffer.from('v2'));
    await rm(root, { recursive: true, force: true });
  });

  it('breaks an empty lock file (a crash right after creating it) once it is old', async () => {
    const { root, store, token } = await setUp();
    await writeFile(lockOf(root), '');
    const old = new Date(Date.now() - 60_000);
    await utimes(lockOf(root), old, old);
    await store.swap(NAME, Buffer.from('v2'), token);
    assert.deepEqual(await store.get(NAME), Buffer.from('v2'));
    await rm(root, { recursive: true, force: true });
  });

  it('waits for a live writer, then gives up with CONFLICT naming its pid and time; the object is untouched', async () => {
    const { root, store, token } = await setUp();
    const since = new Date();
    // A live process (this one) holds a fresh lock on this host: never stale.
    await writeFile(lockOf(root), lockFile(process.pid, hostname(), since));
    await assert.rejects(store.swap(NAME, Buffer.from('v2'), token), (e: unknown) => {
      assert.ok(e instanceof StorageError && e.code === StorageErrorCode.CONFLICT, String(e));
      assert.match(e.message, /^tuf\/timestamp\.json in file:\/\/\S+ is locked by another writer/);
      assert.ok(e.message.endsWith(`(pid ${process.pid} since ${since.toISOString()}) on host ${hostname()}`), e.message);
      assert.match(e.hint ?? '', /re-read tuf\/timestamp\.json and retry/);
      return true;
    });
    assert.deepEqual(await store.get(NAME), Buffer.from('v1'));
    // The other writer's lock is not ours to remove.
    assert.ok((await readdir(join(root, 'tuf'))).includes('.timestamp.json.lock'));
    assert.deepEqual(await store.list('tuf/'), [NAME]);
    await rm(lockOf(root));
    await store.swap(NAME, Buffer.from('v2'), token);
    await rm(root, { recursive: true, force: true });
  });
});
