// Issue 11, "settings that mean nothing" and "ordinary mistakes reported as internal bugs",
// through the real CLI: each bad setting and each ordinary mistake exits non-zero with exactly
// one `ERROR: <what>; <how to fix it>` line per problem on stderr, never "this is unexpected"
// and never a stack trace.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { apx, apxAsync, type Run, scratchDir, Workspace } from './harness.js';

/** `apx ARGS` without blocking the event loop, killed and reported if still running after 30 s. */
function run(cwd: string, args: string[], env: Record<string, string | undefined> = {}): Promise<Run & { timedOut: boolean }> {
  return apxAsync(cwd, args, { APX_RELOAD_INTERVAL: '0', ...env }, { killAfterMs: 30_000 });
}

/** Exit code 1, one ERROR line per expected match (in order), nothing else on stderr. */
function assertErrorLines(r: Run & { timedOut?: boolean }, expected: RegExp[]): void {
  assert.equal(r.timedOut ?? false, false, `still running after 30 s; stdout:\n${r.stdout}`);
  assert.equal(r.status, 1, `exit code ${r.status}; stderr:\n${r.stderr}`);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, expected.length, `want ${expected.length} line(s), got:\n${r.stderr}`);
  expected.forEach((re, i) => {
    assert.match(lines[i] ?? '', /^ERROR: \S.*; \S/, 'ERROR: <what>; <how to fix it>');
    assert.match(lines[i] ?? '', re);
  });
  assert.doesNotMatch(r.stderr, /unexpected|report it/);
  assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
}

describe('e2e: every bad worker setting is one ERROR line at start', () => {
  const dir = scratchDir('apx-settings-');
  const state = join(dir, 'state');
  mkdirSync(state);
  const file = join(dir, 'a-file');
  writeFileSync(file, 'not a directory');
  const prod = { APX_ENV: 'production', APX_STATE_DIR: state };

  const cases: Array<{ name: string; env?: Record<string, string>; args?: string[]; error: RegExp }> = [
    {
      name: 'port out of range',
      env: { APX_PORT: '99999' },
      error: /^ERROR: invalid APX_PORT="99999"; use a port number from 0 to 65535/,
    },
    { name: 'port not a number (flag)', args: ['--port', 'http'], error: /^ERROR: invalid APX_PORT="http"/ },
    {
      name: 'host not a host',
      args: ['--host', 'not-a-host!'],
      error: /^ERROR: invalid APX_HOST="not-a-host!"; use an IP address/,
    },
    { name: 'IPv6 host in brackets', env: { APX_HOST: '[::1]' }, error: /write the IPv6 address without brackets: ::1$/ },
    {
      name: 'reload interval with a unit',
      env: { APX_RELOAD_INTERVAL: '30s' },
      error: /^ERROR: invalid APX_RELOAD_INTERVAL="30s"; use a whole number of seconds from 0 to 86400/,
    },
    {
      name: 'key refresh of zero seconds',
      env: { APX_KEY_REFRESH_INTERVAL: '0' },
      error: /invalid APX_KEY_REFRESH_INTERVAL="0"; use a whole number of seconds from 1/,
    },
    {
      name: 'trust grace in hours',
      env: { APX_TRUST_GRACE: '1h' },
      error: /invalid APX_TRUST_GRACE="1h"; use a whole number of seconds/,
    },
    { name: 'memory cache of zero', env: { APX_MEMORY_CACHE_ENTRIES: '0' }, error: /invalid APX_MEMORY_CACHE_ENTRIES="0"/ },
    { name: 'unknown environment', env: { APX_ENV: 'qa' }, error: /invalid APX_ENV="qa"; use dev, staging or production/ },
    {
      name: 'strict mode not a boolean',
      env: { APX_STRICT_MODE: 'maybe' },
      error: /invalid APX_STRICT_MODE="maybe"; use true or false/,
    },
    {
      name: 'state directory is a file',
      env: { APX_STATE_DIR: file },
      error: /APX_STATE_DIR=".*a-file" is a file, not a directory/,
    },
    {
      name: 'cache directory under a file',
      env: { APX_CACHE_DIR: 'a-file/cache' },
      error: /APX_CACHE_DIR="a-file\/cache": a-file is a file/,
    },
    { name: 'store with an unknown scheme', env: { APX_STORE: 'http://example.com/x' }, error: /unsupported scheme http:\/\// },
    {
      name: 'trust repository that is neither "store" nor a store',
      env: { APX_TRUST_REPOSITORY: 'Store', APX_STATE_DIR: state },
      error: /APX_TRUST_REPOSITORY="Store": no such directory; use "store"/,
    },
    {
      name: 'trust root missing',
      env: { APX_TRUST_REPOSITORY: 'store', APX_STATE_DIR: state, APX_TRUST_ROOT: 'root.json' },
      error: /APX_TRUST_ROOT="root.json": no such file/,
    },
    {
      name: 'trust root without a trust repository',
      env: { APX_TRUST_ROOT: file },
      error: /APX_TRUST_ROOT is set without APX_TRUST_REPOSITORY: it would be ignored/,
    },
    {
      name: 'policies: not a reference',
      env: { APX_POLICIES: 'pb-pay-v1@1.0' },
      error: /"pb-pay-v1@1.0" is not a policy \(pb-pay-v1\) or exact reference/,
    },
    {
      name: 'policies: one named twice',
      env: { APX_POLICIES: 'pb-pay-v1@1.0.0,pb-pay-v1' },
      error: /pb-pay-v1 is named more than once/,
    },
    { name: 'rollback: a range', env: { APX_ALLOW_ROLLBACK: 'pb-pay-v1@^1.0.0' }, error: /is not an exact reference/ },
    {
      name: 'allow-list: a partial version (dev)',
      env: { ALLOWED_POLICY_VERSIONS: '1.0' },
      error:
        /invalid entry "1.0" in ALLOWED_POLICY_VERSIONS: 1.0 is not a full version .*; write the exact version \(1.0.0\) or the range you mean \(~1.0.0\)$/,
    },
    ...['*', 'x', '>=0.0.0', '1', '1.x'].map((entry) => ({
      name: `production allow-list "${entry}"`,
      env: { ...prod, ALLOWED_POLICY_VERSIONS: entry },
      error: new RegExp(`entry "${entry.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}" in ALLOWED_POLICY_VERSIONS`),
    })),
    {
      name: 'production without an allow-list',
      env: prod,
      error: /^ERROR: refusing to start in production without an allow-list; set ALLOWED_POLICY_VERSIONS/,
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      assertErrorLines(await run(dir, ['worker', ...(c.args ?? [])], c.env), [c.error]);
    });
  }

  it('several bad settings: one line for each, all at once', async () => {
    const r = await run(dir, ['worker', '--host', 'not-a-host!', '--port', '99999'], {
      ...prod,
      APX_STATE_DIR: file,
      APX_RELOAD_INTERVAL: '30s',
      ALLOWED_POLICY_VERSIONS: '1.0.0,*',
    });
    assertErrorLines(r, [/ALLOWED_POLICY_VERSIONS/, /APX_STATE_DIR/, /APX_HOST/, /APX_PORT/, /APX_RELOAD_INTERVAL/]);
  });
});

describe('e2e: ordinary mistakes are one clear ERROR line, not an internal bug', () => {
  let ws: Workspace;
  let file: string;
  let busy: Server;
  let busyPort: number;
  before(async () => {
    ws = new Workspace();
    ws.compilePayments();
    file = ws.path('a-file');
    writeFileSync(file, 'not a directory');
    mkdirSync(ws.path('a-dir'));
    busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    busyPort = (busy.address() as { port: number }).port;
  });
  after(async () => {
    await new Promise<void>((resolve) => busy.close(() => resolve()));
  });
  const yaml = () => ws.path('payments-1.0.0.yaml');

  it('the port is in use', async () => {
    const r = await run(ws.dir, ['worker', '--port', String(busyPort)], { APX_STORE: 'build' });
    assertErrorLines(r, [
      new RegExp(
        `^ERROR: cannot listen on 127\\.0\\.0\\.1:${busyPort}: the port is already in use; stop the other process listening on port ${busyPort}, or set --port / APX_PORT to another port`,
      ),
    ]);
  });

  it('--host is not an address of this machine', async () => {
    // 192.0.2.1 is TEST-NET-1 (RFC 5737): never a local address.
    const r = await run(ws.dir, ['worker', '--host', '192.0.2.1', '--port', '0'], { APX_STORE: 'build' });
    assertErrorLines(r, [
      /^ERROR: cannot listen on 192\.0\.2\.1:0: 192\.0\.2\.1 is not an address of this machine; set --host \/ APX_HOST/,
    ]);
  });

  it('--host does not resolve', async () => {
    const r = await run(ws.dir, ['worker', '--host', 'no-such-host.invalid', '--port', '0'], { APX_STORE: 'build' });
    assertErrorLines(r, [
      /^ERROR: cannot listen on no-such-host\.invalid:0: host name no-such-host\.invalid does not resolve; set --host/,
    ]);
  });

  it('--out is a file', () => {
    assertErrorLines(apx(ws.dir, ['compile', '--out', 'a-file', yaml()]), [
      /^ERROR: output directory a-file is a file, not a directory; set --out to a directory \(it is created if missing\), or move the file away$/,
    ]);
  });

  it('--out is under a file', () => {
    assertErrorLines(apx(ws.dir, ['compile', '--out', 'a-file/build', yaml()]), [
      /^ERROR: output directory a-file\/build: a-file is a file, not a directory; set --out to a path whose parents are directories, or move a-file away$/,
    ]);
  });

  it('the audit log is a directory', () => {
    assertErrorLines(apx(ws.dir, ['compile', '--out', 'out', yaml()], { APX_AUDIT_LOG: 'a-dir' }), [
      /^ERROR: audit log a-dir is a directory, not a file; set APX_AUDIT_LOG to a file path/,
    ]);
  });

  it('the audit log is under a file', () => {
    assertErrorLines(
      apx(ws.dir, ['sign', '--version', '1.0.0', 'build/pb-pay-v1@1.0.0.wasm'], { APX_AUDIT_LOG: 'a-file/audit.log' }),
      [
        /^ERROR: audit log a-file\/audit\.log: a-file is a file, not a directory; set APX_AUDIT_LOG to a path whose parents are directories/,
      ],
    );
  });

  it('--key is a directory', () => {
    assertErrorLines(apx(ws.dir, ['compile', '--key', 'a-dir', '--out', 'out', yaml()]), [
      /^ERROR: key file a-dir is a directory, not a file; set --key to a file$/,
    ]);
    assertErrorLines(apx(ws.dir, ['sign-blob', '--key', 'a-dir', yaml()]), [/^ERROR: key file a-dir is a directory, not a file/]);
    assertErrorLines(apx(ws.dir, ['verify', '--key', 'a-dir', 'build/pb-pay-v1@1.0.0.wasm']), [
      /^ERROR: key file is a directory: a-dir;/,
    ]);
  });

  it('--key is under a file', () => {
    assertErrorLines(apx(ws.dir, ['compile', '--key', 'a-file/cosign.key', '--out', 'out', yaml()]), [
      /^ERROR: key file a-file\/cosign\.key: a-file is a file, not a directory/,
    ]);
  });

  it('--output-signature is a directory', () => {
    const r = apx(ws.dir, ['sign-blob', '--output-signature', 'a-dir', yaml()]);
    // sign-blob says which key signed (as cosign does) before writing: one line, then the error.
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('ERROR: '));
    assert.equal(r.status, 1);
    assert.deepEqual(errors, [
      'ERROR: signature file a-dir is a directory, not a file; set --output-signature to a file path (it is created if missing)',
    ]);
    assert.doesNotMatch(r.stderr, /unexpected|^\s+at /m);
  });
});
