import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tempDir } from '@apx/core/testing/hygiene';
import { runCli } from '../cli.js';
import type { CliContext } from '../context.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
const SAMPLES = join(REPO, 'configs', 'samples');

function collect(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}

async function apx(cwd: string, ...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = collect();
  const err = collect();
  const ctx: CliContext = {
    env: { COSIGN_PASSWORD: '', APX_AUDIT_LOG: join(cwd, 'audit.log') },
    cwd,
    stdin: Readable.from([]),
    stdout: out.stream,
    stderr: err.stream,
  };
  const code = await runCli(argv, ctx);
  return { code, stdout: out.text(), stderr: err.text() };
}

/** A policy repository as a CI pipeline sees it: two policies, each with its tests beside it. */
function policyRepo(): string {
  const dir = tempDir('apx-author-');
  mkdirSync(join(dir, 'policies', 'admin'), { recursive: true });
  for (const f of ['payments-api.yaml', 'payments-api.test.yaml']) cpSync(join(SAMPLES, f), join(dir, 'policies', f));
  for (const f of ['admin-api.yaml', 'admin-api.test.yaml']) cpSync(join(SAMPLES, f), join(dir, 'policies', 'admin', f));
  return dir;
}

const edit = (path: string, from: string | RegExp, to: string) => {
  const text = readFileSync(path, 'utf8');
  const next = text.replace(from, to);
  assert.notEqual(next, text, `no ${String(from)} in ${path}`);
  writeFileSync(path, next);
};

describe('apx test', () => {
  it('runs every *.test.yaml under a directory against its policy, PASS per case and a summary, exit 0', async () => {
    const dir = policyRepo();
    const r = await apx(dir, 'test');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.ok(lines.slice(0, -1).every((l) => l.startsWith('PASS policies/')));
    assert.match(lines.at(-1) ?? '', /^ok: \d+ cases passed \(2 files\)$/);
    assert.ok(lines.some((l) => l === 'PASS policies/payments-api.test.yaml:10 a partner creates a payment'));
    // A policy named on the command line runs the tests beside it.
    const one = await apx(dir, 'test', 'policies/admin/admin-api.yaml');
    assert.equal(one.code, 0, one.stderr);
    assert.match(one.stdout, /\(1 file\)\n$/);
  });

  it('fails with exit 1 and shows expected against actual for each differing field', async () => {
    const dir = policyRepo();
    const tests = join(dir, 'policies', 'payments-api.test.yaml');
    edit(
      tests,
      'expect: { allow: false, status: 403, rule: writes-need-scope }',
      'expect: { allow: false, status: 402, rule: free-plan-read-only }',
    );
    const r = await apx(dir, 'test', 'policies');
    assert.equal(r.code, 1);
    assert.ok(r.stdout.includes('FAIL policies/payments-api.test.yaml:46 the free plan may not write\n'), r.stdout);
    assert.ok(r.stdout.includes('     status: expected 402, got 403\n'));
    assert.ok(r.stdout.includes('     rule: expected "free-plan-read-only", got "writes-need-scope"\n'));
    assert.ok(
      r.stdout.includes('     decision: deny 403 "payments:write scope required" (route "payments", rule "writes-need-scope")\n'),
    );
    assert.match(r.stdout, /\nFAILED: 1 of \d+ cases failed \(2 files\)\n$/);

    const json = await apx(dir, 'test', '--json', 'policies');
    assert.equal(json.code, 1);
    const doc = JSON.parse(json.stdout);
    assert.equal(doc.ok, false);
    assert.equal(doc.failed, 1);
    const failed = doc.results
      .flatMap((f: { cases: { passed: boolean }[] }) => f.cases)
      .filter((c: { passed: boolean }) => !c.passed);
    assert.deepEqual(failed[0].mismatches, [
      { field: 'status', expected: 402, actual: 403 },
      { field: 'rule', expected: 'free-plan-read-only', actual: 'writes-need-scope' },
    ]);
    assert.equal(failed[0].decision.reason, 'payments:write scope required');
  });

  it('compares lists and mappings: rate-limit charges, identity, header mutations', async () => {
    const dir = policyRepo();
    const tests = join(dir, 'policies', 'payments-api.test.yaml');
    edit(
      tests,
      '- { name: per-tenant, value: acme, limit: 200, burst: 400 }',
      '- { name: per-tenant, value: globex }\n        - refunds-per-key',
    );
    edit(
      tests,
      'identity: { kind: apiKey, id: acme-prod, tenant: acme, plan: pro }',
      'identity: { kind: apiKey, id: acme-prod, plan: free }',
    );
    const r = await apx(dir, 'test', 'policies/payments-api.test.yaml');
    assert.equal(r.code, 1);
    assert.ok(r.stdout.includes('     identity.plan: expected "free", got "pro"\n'), r.stdout);
    assert.match(
      r.stdout,
      / {5}rateLimits: expected \[\{"name":"per-tenant","value":"globex"\},\{"name":"refunds-per-key"\}\], got \[\{"name":"per-tenant",/,
    );
  });

  it('a test file it cannot run is exit 2 with one line naming file, line, case and field; nothing runs', async () => {
    const dir = policyRepo();
    const tests = join(dir, 'policies', 'payments-api.test.yaml');
    edit(tests, 'expect: { allow: true, route: health, identity: { kind: none } }', 'expect: { allow: true, rout: health }');
    const r = await apx(dir, 'test');
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.equal(
      r.stderr,
      'ERROR: policies/payments-api.test.yaml:77:28 case "health checks need no credentials, from any internal host": ' +
        "expect.rout: unknown field (did you mean 'route'?); expected allow, effect, status, reason, route, rule, identity, headers, rateLimits\n",
    );
    for (const [from, to, message] of [
      [
        'method: POST\n      path: /v1/payments\n      bodySize: 512',
        'method: 5\n      path: /v1/payments',
        /:12:15 case "a partner creates a payment": request\.method: 'method' must be a string$/,
      ],
      [
        '    expect: { allow: false, status: 401, reason: invalid API key }',
        '    expect: { allow: no }',
        /:58:22 case "an unknown API key is refused": expect\.allow: expected true or false$/,
      ],
      [
        '  - name: unknown paths are 404',
        '  - name: a denied network is refused before routing',
        /:83:11 case "a denied network is refused before routing": name: a second case with this name/,
      ],
      ['cases:', 'case:', /:9:1 case: unknown field \(did you mean 'cases'\?\)/],
    ] as const) {
      const d = policyRepo();
      edit(join(d, 'policies', 'payments-api.test.yaml'), from, to);
      const bad = await apx(d, 'test', 'policies/payments-api.test.yaml');
      assert.equal(bad.code, 2, bad.stderr);
      assert.equal(bad.stderr.split('\n').length, 2, bad.stderr);
      assert.match(bad.stderr.trim(), message);
    }
  });

  it('usage mistakes are exit 2: no tests found, a policy without tests, a missing path, a missing policy', async () => {
    const dir = policyRepo();
    mkdirSync(join(dir, 'empty'));
    writeFileSync(join(dir, 'lonely.yaml'), readFileSync(join(SAMPLES, 'public-catalog-api.yaml')));
    writeFileSync(
      join(dir, 'orphan.test.yaml'),
      'cases: [{name: x, request: {method: GET, host: h, path: /}, expect: {allow: true}}]\n',
    );
    for (const [args, message] of [
      [['empty'], /^ERROR: no test files \(\*\.test\.yaml\) under empty;/],
      [['lonely.yaml'], /^ERROR: no tests for lonely\.yaml: expected lonely\.test\.yaml beside it;/],
      [['nope'], /^ERROR: nope does not exist;/],
      [
        ['orphan.test.yaml'],
        /^ERROR: orphan\.test\.yaml: policy orphan\.yaml not found; put the test beside its policy or name it in policy:\n$/,
      ],
    ] as const) {
      const r = await apx(dir, 'test', ...args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
    // `policy:` names the policy relative to the test file.
    writeFileSync(join(dir, 'orphan.test.yaml'), `policy: lonely.yaml\n${readFileSync(join(dir, 'orphan.test.yaml'), 'utf8')}`);
    const named = await apx(dir, 'test', 'orphan.test.yaml');
    assert.equal(named.code, 1, named.stderr);
    assert.match(named.stdout, /FAIL orphan\.test\.yaml:2 x\n {5}allow: expected true, got false\n/);
  });

  it('--run REGEX runs only the cases whose name matches', async () => {
    const dir = policyRepo();
    const r = await apx(dir, 'test', '--run', 'free plan', 'policies');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), [
      'PASS policies/payments-api.test.yaml:39 the free plan may read',
      'PASS policies/payments-api.test.yaml:46 the free plan may not write',
      'ok: 2 cases passed (1 file)',
    ]);
    assert.equal((await apx(dir, 'test', '--run', 'nothing like this')).code, 2);
    const bad = await apx(dir, 'test', '--run', '(');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^ERROR: --run \( is not a valid regular expression;/);
  });

  it('a policy that does not compile fails its test file (exit 1) with the compiler problems', async () => {
    const dir = policyRepo();
    edit(join(dir, 'policies', 'payments-api.yaml'), 'effect: deny\n      status: 402', 'effect: deni\n      status: 402');
    const r = await apx(dir, 'test');
    assert.equal(r.code, 1);
    assert.match(
      r.stdout,
      /^FAIL policies\/payments-api\.test\.yaml: policy policies\/payments-api\.yaml does not compile \(9 cases not run\)\n {5}policies\/payments-api\.yaml:\d+:\d+ spec\.rules\[2\]\.effect: invalid value 'deni'/m,
    );
    assert.match(r.stdout, /^PASS policies\/admin\/admin-api\.test\.yaml/m);
  });
});

describe('apx fmt', () => {
  it('--check lists the files that differ and exits 1 without writing; fmt rewrites them; then --check passes', async () => {
    const dir = policyRepo();
    // The samples are canonical: `default` first in spec is not (it comes last).
    const policy = join(dir, 'policies', 'payments-api.yaml');
    edit(policy, /^ {2}default: allow\n/m, '');
    edit(policy, /^spec:\n/m, 'spec:\n  default: allow\n');
    const before = readFileSync(policy, 'utf8');
    chmodSync(policy, 0o640);
    const check = await apx(dir, 'fmt', '--check');
    assert.equal(check.code, 1);
    assert.equal(check.stdout, 'policies/payments-api.yaml\n');
    assert.equal(readFileSync(join(dir, 'policies', 'payments-api.yaml'), 'utf8'), before);

    const fmt = await apx(dir, 'fmt');
    assert.equal(fmt.code, 0, fmt.stderr);
    assert.ok(fmt.stdout.includes('formatted policies/payments-api.yaml\n'));
    const after = readFileSync(join(dir, 'policies', 'payments-api.yaml'), 'utf8');
    assert.ok(after.endsWith('\n  default: allow\n'));
    assert.equal(after, readFileSync(join(SAMPLES, 'payments-api.yaml'), 'utf8'));
    assert.equal(statSync(join(dir, 'policies', 'payments-api.yaml')).mode & 0o777, 0o640);
    // Test files are not policies: untouched.
    assert.equal(
      readFileSync(join(dir, 'policies', 'payments-api.test.yaml'), 'utf8'),
      readFileSync(join(SAMPLES, 'payments-api.test.yaml'), 'utf8'),
    );

    const again = await apx(dir, 'fmt', '--check', 'policies');
    assert.equal(again.code, 0, again.stdout);
    assert.equal(again.stdout, '');
    const twice = await apx(dir, 'fmt');
    assert.equal(twice.stdout, '');
    assert.equal(readFileSync(join(dir, 'policies', 'payments-api.yaml'), 'utf8'), after);
    // Same meaning: the tests still pass.
    assert.equal((await apx(dir, 'test')).code, 0);
  });

  it('a file named on the command line must be a policy (exit 2)', async () => {
    const dir = policyRepo();
    for (const file of ['policies/payments-api.test.yaml', 'k8s.yaml']) {
      writeFileSync(join(dir, 'k8s.yaml'), 'apiVersion: v1\nkind: ConfigMap\n');
      const r = await apx(dir, 'fmt', file);
      assert.equal(r.code, 2);
      assert.match(r.stderr, new RegExp(`^ERROR: ${file.replace('.', '\\.')} is not an apx/v1 policy`));
    }
  });

  it('a file that is not YAML: one line naming it, exit 1, nothing written', async () => {
    const dir = policyRepo();
    writeFileSync(join(dir, 'policies', 'broken.yaml'), 'apiVersion: apx/v1\nkind: [\n');
    edit(join(dir, 'policies', 'payments-api.yaml'), /^ {2}default: allow\n/m, '');
    edit(join(dir, 'policies', 'payments-api.yaml'), /^spec:\n/m, 'spec:\n  default: allow\n');
    const r = await apx(dir, 'fmt');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^policies\/broken\.yaml:3:1: .*\nERROR: 1 file could not be formatted; nothing written;/);
    assert.equal(r.stdout, '');
    assert.equal((await apx(dir, 'fmt', '--check', 'policies/payments-api.yaml')).code, 1, 'nothing was written');
  });
});

const MAIN = join(REPO, 'packages', 'cli', 'dist', 'main.js');

/** Runs apx with APX_TEST_PAUSE_AT=step and sends SIGINT once it says it paused there (no timing). */
async function interruptAt(cwd: string, args: string[], step: string): Promise<{ status: number | null; stderr: string }> {
  const child = spawn(process.execPath, [MAIN, ...args], {
    cwd,
    env: { ...process.env, APX_TEST_PAUSE_AT: step },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let paused = false;
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
    if (!paused && stderr.includes(`APX_TEST_PAUSED ${step}\n`)) {
      paused = true;
      child.kill('SIGINT');
    }
  });
  const status = await new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  assert.ok(paused, `never paused at ${step}: ${stderr}`);
  return { status, stderr };
}

describe('apx fmt under Ctrl-C (SIGINT)', () => {
  it('rewrites every file or none, and leaves no temporary file', async () => {
    for (const [step, expected] of [
      ['write:temps-written', 'none'],
      ['write:committing', 'all'],
    ] as const) {
      const dir = policyRepo();
      const files = [join(dir, 'policies', 'payments-api.yaml'), join(dir, 'policies', 'admin', 'admin-api.yaml')];
      const canonical = files.map((f) => readFileSync(f, 'utf8'));
      for (const f of files) {
        edit(f, /^ {2}default: (allow|deny)\n/m, '');
        edit(f, /^spec:\n/m, `spec:\n  default: ${f.includes('admin') ? 'deny' : 'allow'}\n`);
      }
      const before = files.map((f) => readFileSync(f, 'utf8'));
      const r = await interruptAt(dir, ['fmt', 'policies'], step);
      assert.equal(r.status, 130, r.stderr);
      const after = files.map((f) => readFileSync(f, 'utf8'));
      assert.deepEqual(after, expected === 'all' ? canonical : before, step);
      const names = readdirSync(join(dir, 'policies'), { recursive: true, encoding: 'utf8' });
      assert.deepEqual(
        names.filter((n) => n.endsWith('.tmp')),
        [],
        step,
      );
    }
  });
});

describe('requests: apx eval and apx test read them as a worker does', () => {
  it("agrees with the worker's toPolicyRequest (/v1/decide)", async () => {
    const { requestFromValue } = await import('@apx/policy');
    const { toPolicyRequest } = await import('@apx/worker');
    const inputs = [
      { method: 'get', host: 'api.example.com:8443', path: '/v1/payments?x=1', headers: { 'X-API-Key': 'k' } },
      { method: 'POST', host: 'API.example.com', path: '/v1/refunds', ip: '2001:db8::1', bodySize: 12 },
      { method: 'GET', host: 'h', path: '/', jwt: { verified: true, claims: { sub: 'u', roles: ['a'] } } },
      { method: 'GET', host: 'h', path: '/', jwt: { verified: false } },
    ];
    for (const input of inputs) {
      const ours = requestFromValue(input);
      assert.ok('request' in ours, JSON.stringify(input));
      assert.deepEqual(ours.request, toPolicyRequest(input), JSON.stringify(input));
    }
  });
});

describe('apx schema', () => {
  it('prints the published JSON Schemas (policies, and with --tests test files)', async () => {
    const r = await apx(REPO, 'schema');
    assert.equal(r.code, 0);
    assert.deepEqual(JSON.parse(r.stdout), JSON.parse(readFileSync(join(REPO, 'schema', 'apx-v1.schema.json'), 'utf8')));
    const tests = await apx(REPO, 'schema', '--tests');
    assert.equal(tests.code, 0);
    assert.deepEqual(JSON.parse(tests.stdout), JSON.parse(readFileSync(join(REPO, 'schema', 'apx-test.schema.json'), 'utf8')));
  });
});

describe('apx eval on sources and unsigned artifacts; --fail, --fail-defined', () => {
  const allowed = JSON.stringify({
    method: 'GET',
    host: 'api.example.com',
    path: '/v1/payments/p1',
    headers: { 'X-API-Key': 'demo-acme-prod-key' },
  });
  const denied = JSON.stringify({ method: 'GET', host: 'api.example.com', path: '/nowhere' });

  it('evaluates a source in memory and says so; exit codes follow opa eval', async () => {
    const dir = policyRepo();
    writeFileSync(join(dir, 'allowed.json'), allowed);
    writeFileSync(join(dir, 'denied.json'), denied);
    const src = 'policies/payments-api.yaml';
    const r = await apx(dir, 'eval', src, '--request', 'allowed.json');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).effect, 'allow');
    assert.equal(r.stderr, `note: evaluating source ${src}, not a signed artifact (compiled in memory, nothing written)\n`);
    const expectations: [string, string[], number][] = [
      ['denied.json', [], 0],
      ['denied.json', ['--fail'], 1],
      ['allowed.json', ['--fail'], 0],
      ['denied.json', ['--fail-defined'], 0],
      ['allowed.json', ['--fail-defined'], 1],
    ];
    for (const [request, flags, code] of expectations) {
      const e = await apx(dir, 'eval', ...flags, src, '--request', request);
      assert.equal(e.code, code, `${request} ${flags.join(' ')}`);
      assert.ok(JSON.parse(e.stdout).effect, 'the decision is printed whatever the exit code');
    }
    const both = await apx(dir, 'eval', '--fail', '--fail-defined', src, '--request', 'allowed.json');
    assert.equal(both.code, 2);
    const staging = await apx(dir, 'eval', '--env', 'staging', src, '--request', 'allowed.json');
    assert.equal(staging.code, 2);
    assert.match(staging.stderr, /--env staging checks a signed artifact, not a source/);
    // A source with problems: each on its own line, nothing evaluated.
    edit(join(dir, src), 'effect: deny\n      status: 402', 'effect: deni\n      status: 402');
    const broken = await apx(dir, 'eval', src, '--request', 'allowed.json');
    assert.equal(broken.code, 1);
    assert.equal(broken.stdout, '');
    assert.match(
      broken.stderr,
      /^policies\/payments-api\.yaml:\d+:\d+ spec\.rules\[2\]\.effect: .*\nERROR: 1 problem in policies\/payments-api\.yaml; nothing evaluated;/,
    );
  });

  it('runs an unsigned artifact in dev with a warning, and refuses it elsewhere', async () => {
    const dir = policyRepo();
    writeFileSync(join(dir, 'allowed.json'), allowed);
    const compiled = await apx(dir, 'compile', '--no-sign', 'policies/payments-api.yaml');
    assert.equal(compiled.code, 0, compiled.stderr);
    const dev = await apx(dir, 'eval', 'pb-pay-v1@1.0.0.wasm', '--request', 'allowed.json', '--fail');
    assert.equal(dev.code, 0, dev.stderr);
    assert.equal(JSON.parse(dev.stdout).route, 'payments');
    assert.match(dev.stderr, /^WARNING: evaluating an UNSIGNED artifact pb-pay-v1@1\.0\.0\.wasm \(dev only\)/);
    for (const env of ['staging', 'production']) {
      const r = await apx(dir, 'eval', '--env', env, 'pb-pay-v1@1.0.0.wasm', '--request', 'allowed.json');
      assert.equal(r.code, 1);
      assert.equal(r.stdout, '');
      assert.match(
        r.stderr,
        /^ERROR: signature file not found: pb-pay-v1@1\.0\.0\.wasm\.sig \(strict mode enabled\); an unsigned artifact runs only with --env dev/,
      );
    }
    // A signature beside it is always checked: a junk one is refused, even in dev.
    writeFileSync(join(dir, 'pb-pay-v1@1.0.0.wasm.sig'), 'MEUCIQ==');
    mkdirSync(join(dir, 'keys'));
    const keys = await apx(dir, 'generate-key-pair', '--output-key-prefix', 'keys/cosign');
    assert.equal(keys.code, 0, keys.stderr);
    const junk = await apx(dir, 'eval', 'pb-pay-v1@1.0.0.wasm', '--request', 'allowed.json');
    assert.equal(junk.code, 1);
    assert.match(junk.stderr, /^ERROR: signature verification failed/);
  });
});

describe('a CI pipeline over a policy repository', () => {
  const ARTIFACTS = ['pb-admin-v1@2.3.0', 'pb-pay-v1@1.0.0'];

  /**
   * The pipeline's steps in order, each a gate: fmt --check, test, compile --json (signed for
   * staging), publish each artifact; the first that fails stops it, as `set -e` would.
   * `beforePublish` plays what happens between the jobs (an upload that drops a file).
   */
  async function pipeline(dir: string, beforePublish?: () => void): Promise<{ failedAt: string | undefined; output: string }> {
    let output = '';
    const steps = [
      ['fmt', '--check', 'policies'],
      ['test', 'policies'],
      ['compile', '--json', '--env', 'staging', '--out', 'out', 'policies/admin/admin-api.yaml', 'policies/payments-api.yaml'],
      ...ARTIFACTS.map((ref) => ['publish', '--store', 'store', '--env', 'staging', `out/${ref}.wasm`]),
    ];
    for (const step of steps) {
      if (step[0] === 'publish' && step.at(-1)?.startsWith('out/pb-admin')) beforePublish?.();
      const r = await apx(dir, ...step);
      output += r.stdout + r.stderr;
      if (step[0] === 'compile' && r.code === 0) {
        const doc = JSON.parse(r.stdout);
        assert.ok(JSON.stringify(doc).includes('pb-pay-v1@1.0.0.wasm'), r.stdout);
      }
      if (r.code !== 0) return { failedAt: step.slice(0, 2).join(' '), output };
    }
    return { failedAt: undefined, output };
  }

  async function signedRepo(): Promise<string> {
    const dir = policyRepo();
    const keys = await apx(dir, 'generate-key-pair', '--output-key-prefix', 'keys/cosign');
    assert.equal(keys.code, 0, keys.stderr);
    return dir;
  }

  it('passes when formatted, tested, compiled and published with bundles', async () => {
    const dir = await signedRepo();
    const r = await pipeline(dir);
    assert.equal(r.failedAt, undefined, r.output);
    const stored = readdirSync(join(dir, 'store'), { recursive: true, encoding: 'utf8' });
    for (const ref of ARTIFACTS)
      assert.ok(
        stored.some((n) => n.endsWith(`${ref}.wasm.sigstore.json`)),
        stored.join(', '),
      );
  });

  it('fails on a format difference', async () => {
    const dir = await signedRepo();
    edit(join(dir, 'policies', 'admin', 'admin-api.yaml'), /^ {2}default: deny\n/m, '  default:   deny\n');
    const r = await pipeline(dir);
    assert.equal(r.failedAt, 'fmt --check');
    assert.match(r.output, /^policies\/admin\/admin-api\.yaml$/m);
  });

  it('fails on a broken test', async () => {
    const dir = await signedRepo();
    edit(join(dir, 'policies', 'admin', 'admin-api.test.yaml'), 'rule: ci-deploys-only', 'rule: deployers-deploy');
    const r = await pipeline(dir);
    assert.equal(r.failedAt, 'test policies');
    assert.match(r.output, /^FAIL policies\/admin\/admin-api\.test\.yaml:\d+ the CI key may not read users$/m);
  });

  it('fails on a missing bundle at publish', async () => {
    const dir = await signedRepo();
    const r = await pipeline(dir, () => rmSync(join(dir, 'out', 'pb-admin-v1@2.3.0.wasm.sigstore.json')));
    assert.equal(r.failedAt, 'publish --store');
    assert.match(r.output, /^ERROR: refusing to publish pb-admin-v1@2\.3\.0\.wasm for staging: .*its bundle.* is missing/m);
  });
});

describe('docs/policy-language.md examples', () => {
  const doc = readFileSync(join(REPO, 'docs', 'policy-language.md'), 'utf8');
  const blocks = (lang: string) =>
    [...doc.matchAll(new RegExp(`\`\`\`${lang}\\n([\\s\\S]*?)\`\`\``, 'g'))].map((m) => m[1] as string);

  it('the test file example runs and passes against the payments sample', async () => {
    const example = blocks('yaml').find((b) => b.startsWith('policy: payments-api.yaml'));
    assert.ok(example, 'no test-file example in the docs');
    const dir = policyRepo();
    writeFileSync(join(dir, 'policies', 'payments-api.test.yaml'), example);
    const r = await apx(dir, 'test', 'policies/payments-api.yaml');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^ok: 2 cases passed \(1 file\)$/m);
  });

  it('the request example is what apx eval takes', async () => {
    const example = blocks('json').find((b) => b.includes('"method"'));
    assert.ok(example, 'no request example in the docs');
    const dir = policyRepo();
    writeFileSync(join(dir, 'request.json'), example);
    const r = await apx(dir, 'eval', 'policies/payments-api.yaml', '--request', 'request.json');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout).identity, { kind: 'jwt', id: 'user-42', tenant: 'acme', plan: '' });
  });
});
