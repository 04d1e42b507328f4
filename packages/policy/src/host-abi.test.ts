// The host lives in @apx/core, which cannot depend on a WebAssembly toolchain; its ABI checks
// are tested here, where wabt can build the hostile modules.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ABI_VERSION, type PolicyFault, PolicyHost, REQUEST, type VerifiedArtifact } from '@apx/core';
import wabtInit from 'wabt';
import { signAndVerify } from './testing/artifacts.js';

const META = { policy: 't', version: '1.0.0', abi: ABI_VERSION, compiler: 'test', sourceSha256: '0'.repeat(64) };
const TABLES = {
  reasons: ['ok'],
  routes: [{ name: 'r' }],
  rules: [],
  apiKeys: [],
  apiKeyHeader: null,
  jwt: null,
  headerSlots: [],
  headers: { request: { set: {}, remove: [] }, response: { set: {}, remove: [] } },
  rateLimits: [],
  memoryPages: 2,
};
const esc = (v: unknown) => JSON.stringify(JSON.stringify(v));
const ALLOW = `(i32.store (i32.const 0) (i32.const 1)) (i32.store (i32.const 4) (i32.const 200)) (i32.store (i32.const 8) (i32.const 0))
  (i32.store (i32.const 12) (i32.const 0)) (i32.store (i32.const 16) (i32.const -1)) (i32.store (i32.const 20) (i32.const 0))
  (i32.store (i32.const 24) (i32.const -1)) (i32.const 1)`;

interface Parts {
  meta?: unknown;
  tables?: unknown;
  imports?: string;
  body?: string;
  extra?: string;
}

async function artifact(p: Parts = {}): Promise<VerifiedArtifact> {
  return signAndVerify(await moduleBytes(p));
}

async function moduleBytes(p: Parts): Promise<Uint8Array> {
  const wabt = await wabtInit();
  const sections = [
    p.meta === null ? '' : `(@custom "apx.meta" ${esc(p.meta ?? META)})`,
    `(@custom "apx.tables" ${esc(p.tables ?? TABLES)})`,
  ];
  const wat = `(module ${sections.join(' ')}
    ${p.imports ?? '(import "env" "memory" (memory 2 2))'}
    (func $decide (export "decide") (result i32) ${p.body ?? ALLOW})
    ${p.extra ?? ''})`;
  const mod = wabt.parseWat('t.wat', wat, { annotations: true });
  try {
    mod.resolveNames();
    mod.validate();
    return mod.toBinary({ log: false }).buffer;
  } finally {
    mod.destroy();
  }
}

const REQ = { method: 'GET', host: 'h', path: '/' };

function rejects(p: Parts, message: RegExp) {
  return async () => {
    const bytes = await moduleBytes(p);
    // Refused by core's verifier (ABI check) or, for memory limits, when instantiated.
    assert.throws(
      () => PolicyHost.load(signAndVerify(bytes)),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, 'ARTIFACT_ABI_MISMATCH');
        assert.match(err.message, message);
        return true;
      },
    );
  };
}

describe('policy host', () => {
  it('runs a module that follows the ABI', async () => {
    const d = PolicyHost.load(await artifact()).decide(REQ);
    assert.deepEqual([d.effect, d.status, d.reason, d.route, d.rule], ['allow', 200, 'ok', 'r', null]);
  });

  it('accepts only verified artifacts (a compile-time guarantee)', async () => {
    const module = (await artifact()).module;
    // @ts-expect-error: a bare module (or bytes) is not a VerifiedArtifact.
    const attempt = () => PolicyHost.load({ module, digest: 'x', size: 1, keyId: 'k', verifiedAt: new Date() });
    assert.throws(attempt, { code: 'ARTIFACT_NOT_VERIFIED' });
  });

  it(
    'refuses an extra import',
    rejects(
      { imports: '(import "env" "memory" (memory 2 2)) (import "env" "log" (func))' },
      /imports must be exactly env\.memory/,
    ),
  );
  it(
    'refuses a module with its own memory',
    rejects({ imports: '(memory 2 2)' }, /imports must be exactly env\.memory \(memory\), found none/),
  );
  it('refuses an extra export', rejects({ extra: '(func (export "other"))' }, /exports must be exactly decide/));
  it('refuses a module without metadata', rejects({ meta: null }, /expected one "apx\.meta" custom section, found 0/));
  it('refuses another ABI version', rejects({ meta: { ...META, abi: ABI_VERSION + 1 } }, /ABI v2, this host runs v1/));
  it('refuses memory beyond the cap', rejects({ tables: { ...TABLES, memoryPages: 17 } }, /memory of 17 pages outside/));
  it(
    'refuses malformed tables',
    rejects({ tables: { ...TABLES, rateLimits: [{ name: 'x', key: 'request.ip' }] } }, /malformed rate limit/),
  );
  it(
    'refuses memory limits that disagree with the tables',
    rejects({ imports: '(import "env" "memory" (memory 3 3))' }, /instantiation failed/),
  );

  it('gives the module a memory it cannot grow', async () => {
    // The module traps unless memory.grow fails: the host-created memory has maximum = initial.
    const body = `(if (i32.ne (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable)) ${ALLOW}`;
    assert.equal(
      PolicyHost.load(await artifact({ body, imports: '(import "env" "memory" (memory 2 16))' })).decide(REQ).effect,
      'allow',
    );
  });

  it('fails closed on a trap and reports it', async () => {
    const faults: PolicyFault[] = [];
    const host = PolicyHost.load(await artifact({ body: 'unreachable' }), { onFault: (f) => faults.push(f) });
    const d = host.decide(REQ);
    assert.deepEqual([d.effect, d.status, d.reason], ['deny', 500, 'policy evaluation failed']);
    assert.equal(faults[0]?.kind, 'trap');
    assert.equal(faults[0]?.policy, 't@1.0.0');
  });

  it('fails closed on a malformed decision', async () => {
    const faults: PolicyFault[] = [];
    const body = ALLOW.replace('(i32.const 200)', '(i32.const 42)');
    const d = PolicyHost.load(await artifact({ body }), { onFault: (f) => faults.push(f) }).decide(REQ);
    assert.deepEqual([d.effect, d.status], ['deny', 500]);
    assert.equal(faults[0]?.kind, 'malformed');
    const noRoute = PolicyHost.load(
      await artifact({
        body: ALLOW.replace('(i32.store (i32.const 12) (i32.const 0))', '(i32.store (i32.const 12) (i32.const -1))'),
      }),
    ).decide(REQ);
    assert.deepEqual([noRoute.effect, noRoute.status], ['deny', 500]);
    const wrongReturn = PolicyHost.load(await artifact({ body: ALLOW.replace(/\(i32\.const 1\)$/, '(i32.const 7)') })).decide(
      REQ,
    );
    assert.equal(wrongReturn.status, 500);
  });

  it('fails closed on a request too large for the request area', async () => {
    const faults: PolicyFault[] = [];
    const host = PolicyHost.load(await artifact(), { onFault: (f) => faults.push(f) });
    const d = host.decide({ ...REQ, path: `/${'a'.repeat(70_000)}` });
    assert.deepEqual([d.effect, d.status], ['deny', 431]);
    assert.equal(faults[0]?.kind, 'oversized');
    // The next request is unaffected.
    assert.equal(host.decide(REQ).effect, 'allow');
  });

  it('fails closed on attributes of the wrong type', async () => {
    const faults: PolicyFault[] = [];
    const host = PolicyHost.load(await artifact(), { onFault: (f) => faults.push(f) });
    const d = host.decide({ ...REQ, path: 42 as unknown as string });
    assert.deepEqual([d.effect, d.status], ['deny', 400]);
    assert.equal(faults[0]?.kind, 'invalid-request');
  });

  it('writes the request where docs/abi.md says', async () => {
    // decide returns allow only if the path length at REQUEST.path+4 is 6 ("/hello").
    const body = `(if (i32.ne (i32.load (i32.const ${REQUEST.path + 4})) (i32.const 6)) (then (return (i32.const 0)))) ${ALLOW}`;
    const host = PolicyHost.load(await artifact({ body }));
    assert.equal(host.decide({ ...REQ, path: '/hello' }).effect, 'allow');
    assert.equal(host.decide({ ...REQ, path: '/hell' }).status, 500);
  });
});
