// Start-up (issue 17): each command loads only what it uses. The CLI runs as a child process
// under a tracer (an --import module: a module.register() resolve hook for ES modules, and
// require.cache at exit for CommonJS, whose inner require() calls bypass the hook on Node 20),
// and the modules it loaded are checked. Their time is `npm run bench:startup`'s to measure.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { apx, ok, WorkerProcess, Workspace } from './e2e/harness.js';

/** Sigstore's libraries (protobuf-specs included), TUF, and the HTTP stack both bring along. */
const SIGSTORE_AND_TUF = ['@sigstore/', 'tuf-js/', '@tufjs/', 'make-fetch-happen/', 'cacache/', 'socks/'];

/** Writes the tracer into `ws` and returns the NODE_OPTIONS that load it, and the trace file. */
function tracer(ws: Workspace, name: string): { env: Record<string, string>; modules: () => string[] } {
  const trace = ws.path(`${name}.trace`);
  const hooks = ws.path('trace-hooks.mjs');
  writeFileSync(
    hooks,
    `import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  appendFileSync(process.env.APX_TRACE_FILE, resolved.url + '\\n');
  return resolved;
}
`,
  );
  const register = ws.path('trace-register.mjs');
  writeFileSync(
    register,
    `import { appendFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';
register(${JSON.stringify(pathToFileURL(hooks).href)});
const cache = createRequire(import.meta.url).cache;
process.on('exit', () => appendFileSync(process.env.APX_TRACE_FILE, Object.keys(cache).join('\\n') + '\\n'));
`,
  );
  writeFileSync(trace, '');
  return {
    env: { NODE_OPTIONS: `--import=${pathToFileURL(register).href}`, APX_TRACE_FILE: trace },
    modules: () => {
      const lines = readFileSync(trace, 'utf8').split('\n').filter(Boolean);
      assert.ok(
        lines.some((l) => l.includes('/packages/cli/dist/cli.js')),
        'the trace saw the process load the CLI',
      );
      return lines;
    },
  };
}

/** The modules of `packages` (node_modules paths) among `modules`, one line per package. */
function loaded(modules: string[], packages: readonly string[]): string[] {
  const found = new Set<string>();
  for (const m of modules) for (const p of packages) if (m.includes(`/node_modules/${p}`)) found.add(p);
  return [...found].sort();
}

/** The commands' own modules among `modules` (commands/index.js is the light table of them). */
function commandModules(modules: string[]): string[] {
  return modules.filter((m) => m.includes('/packages/cli/dist/commands/') && !m.endsWith('/commands/index.js'));
}

describe('start-up: each command loads only what it uses', () => {
  const ws = new Workspace();
  const artifact = ws.compilePayments();
  ok(apx(ws.dir, ['sign-blob', '--output-signature', 'blob.sig', artifact]));
  const workers: WorkerProcess[] = [];
  after(async () => {
    for (const w of workers) await w.stop();
  });

  it('apx --version loads the dispatcher only: no command, no APX library, no Sigstore or TUF', () => {
    const t = tracer(ws, 'version');
    const r = apx(ws.dir, ['--version'], t.env);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^apx \d+\.\d+\.\d+/);
    const modules = t.modules();
    assert.deepEqual(
      modules.filter((m) => /\/packages\/(?!cli\/)[^/]+\/dist\//.test(m) || m.includes('/node_modules/')),
      [],
    );
    assert.deepEqual(commandModules(modules), [], 'no command module');
  });

  it("apx --help lists every command without loading any command's module", () => {
    const t = tracer(ws, 'help');
    const r = apx(ws.dir, ['--help'], t.env);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /verify-blob/);
    assert.deepEqual(commandModules(t.modules()), []);
  });

  it('apx verify-blob with a key file and a detached signature loads no Sigstore, protobuf or TUF code', () => {
    const t = tracer(ws, 'verify-blob');
    const r = apx(ws.dir, ['verify-blob', '--key', 'keys/cosign.pub', '--signature', 'blob.sig', artifact], t.env);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /Verified OK/);
    assert.deepEqual(loaded(t.modules(), SIGSTORE_AND_TUF), []);
  });

  it("a worker without a trust repository starts and loads a policy without TUF, Sigstore's signing or HTTP stack", async () => {
    const t = tracer(ws, 'worker');
    ws.stage(ws.path('store'), artifact);
    const worker = await WorkerProcess.start(ws.dir, { ...t.env, APX_STORE: ws.path('store') });
    workers.push(worker);
    await worker.waitFor((l) => l.message === 'policy loaded: pb-pay-v1@1.0.0', 'load');
    await worker.stop();
    // The bundle beside the artifact is parsed with @sigstore/bundle (and protobuf-specs): that
    // much Sigstore code a worker needs; not the signing clients, the verifier or TUF.
    const heavy = ['tuf-js/', '@tufjs/', 'make-fetch-happen/', '@sigstore/sign/', '@sigstore/verify/', '@sigstore/tuf/'];
    assert.deepEqual(loaded(t.modules(), heavy), []);
  });
});
