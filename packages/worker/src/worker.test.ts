// The worker's load pipeline and HTTP API against an in-memory store double and a tiny
// signed module. Real stores and compiled policies are exercised end to end in the CLI
// tests; here each runbook rejection is checked for its message, metric and log line.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  type ArtifactRef,
  artifactFileName,
  FUEL_CHUNK,
  METER_MODULE,
  METER_REFUEL,
  PublicKey,
  parseArtifactRef,
  SignatureVerifier,
} from '@apx/core';
import { policyModule, signatureFile } from '@apx/core/testing';
import { tempDir } from '@apx/core/testing/hygiene';
import { resolveConfig } from './config.js';
import type { TrustedKeyProvider } from './keys.js';
import type { RuntimeFactory } from './runtime.js';
import { type ArtifactMaterial, type ArtifactSource, listingOf } from './source.js';
import { type RunningWorker, startWorker } from './worker.js';

/** A signed-ready module of the policy ABI whose embedded apx.meta names `ref`. */
const wasm = (ref = 'pb-test@1.0.0') => policyModule(ref.split('@')[0] as string, ref.split('@')[1] as string);
const WASM = wasm();

const signer = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const sigFile = (bytes: Buffer, key = signer.privateKey) => signatureFile(bytes, key);

class MemorySource implements ArtifactSource {
  readonly url = 'memory://test';
  readonly objects = new Map<string, ArtifactMaterial>();
  fetches = 0;
  failing = false;
  put(ref: string, material: Partial<ArtifactMaterial> & { artifact: Buffer }) {
    this.objects.set(ref, { signature: undefined, bundle: undefined, ...material });
  }
  async fetch(ref: ArtifactRef, options: { maxBytes: number }) {
    this.fetches++;
    if (this.failing) throw new Error('connect ECONNREFUSED 127.0.0.1:1');
    await new Promise((r) => setImmediate(r));
    const m = this.objects.get(`${ref.policyId}@${ref.version}`);
    if (m && m.artifact.length > options.maxBytes) {
      const { VerificationError, CoreErrorCode } = await import('@apx/core');
      throw new VerificationError(
        CoreErrorCode.ARTIFACT_TOO_LARGE,
        `artifact too large: ${m.artifact.length} bytes (max: ${options.maxBytes})`,
      );
    }
    return m;
  }
  async versions(policyId: string) {
    return [...this.objects.keys()].filter((k) => k.startsWith(`${policyId}@`)).map((k) => k.slice(policyId.length + 1));
  }
  async listing() {
    return listingOf([...this.objects.keys()].map((k) => parseArtifactRef(k)));
  }
  async getObject() {
    return undefined;
  }
}

const runtimeFactory: RuntimeFactory = (artifact) => {
  const memory = new WebAssembly.Memory({ initial: 2, maximum: 2 });
  // Verified modules are metered: they import the host's refuel (core/src/wasm/meter.ts).
  const instance = new WebAssembly.Instance(artifact.module, {
    env: { memory },
    [METER_MODULE]: { [METER_REFUEL]: () => FUEL_CHUNK },
  });
  const f = () => ((instance.exports.decide as () => number)() === 1 ? 42 : 0);
  return {
    decide: (request) => {
      const r = request as { deny?: boolean; limit?: boolean };
      return {
        allow: f() === 42 && !r.deny,
        status: r.deny ? 403 : 200,
        reason: r.deny ? 'denied by test' : 'ok',
        rateLimits: r.limit ? [{ name: 'per-test', key: 'k', rps: 1, burst: 2 }] : [],
        json: JSON.stringify({
          allow: f() === 42 && !r.deny,
          status: r.deny ? 403 : 200,
          reason: r.deny ? 'denied by test' : 'ok',
        }),
      };
    },
  };
};

const keys: TrustedKeyProvider = {
  description: 'test key',
  verifier: async () => new SignatureVerifier(PublicKey.fromKeyObject(signer.publicKey)),
};

interface Harness {
  worker: RunningWorker;
  source: MemorySource;
  logs: Array<Record<string, unknown>>;
}

async function harness(env: Record<string, string>, setup: (s: MemorySource) => void): Promise<Harness> {
  const source = new MemorySource();
  setup(source);
  const logs: Array<Record<string, unknown>> = [];
  const { config, warnings } = resolveConfig({ APX_PORT: '0', APX_RELOAD_INTERVAL: '0', ...env });
  const worker = await startWorker(config, warnings, {
    openSource: async () => source,
    runtimeFactory,
    env: {},
    cwd: process.cwd(),
    keys,
    retryMinMs: 60_000,
    logDestination: { write: (line: string) => logs.push(JSON.parse(line)) },
  });
  return { worker, source, logs };
}

async function metric(w: RunningWorker, name: string): Promise<number> {
  const text = await w.metrics.registry.metrics();
  let total = 0;
  for (const line of text.split('\n')) if (line.startsWith(name)) total += Number(line.split(' ').pop());
  return total;
}

describe('worker: each rejection has its message, metric and log line, and nothing loads', () => {
  const tampered = Buffer.from(WASM);
  tampered[tampered.length - 2] = 0x2b;
  const cases: Array<{
    name: string;
    env?: Record<string, string>;
    material: () => Partial<ArtifactMaterial> & { artifact: Buffer };
    message: string;
    metric: string;
    severity: string;
    tampering?: boolean;
    securityEvent?: string;
    /** Refused while downloading, before any digest exists. */
    noDigest?: boolean;
  }> = [
    {
      name: 'a flipped byte',
      material: () => ({ artifact: tampered, signature: sigFile(WASM) }),
      message:
        'artifact verification failed for pb-test@1.0.0: signature verification failed: ECDSA signature verification failed',
      metric: 'apx_artifacts_verification_failures_total{reason="SIGNATURE_INVALID"}',
      severity: 'ERROR',
      tampering: true,
    },
    {
      name: 'a missing signature (strict)',
      material: () => ({ artifact: WASM }),
      message:
        'artifact verification failed for pb-test@1.0.0: signature file not found: pb-test@1.0.0.wasm.sig (strict mode enabled)',
      metric: 'apx_artifacts_unsigned_blocked_total',
      severity: 'WARNING',
    },
    {
      name: 'a version not allowed',
      env: { ALLOWED_POLICY_VERSIONS: '0.9.0,1.1.0' },
      material: () => ({ artifact: WASM, signature: sigFile(WASM) }),
      message: 'artifact verification failed for pb-test@1.0.0: policy version 1.0.0 not in allowed list: [0.9.0 1.1.0]',
      metric: 'apx_artifacts_unknown_versions_total',
      severity: 'ERROR',
    },
    {
      name: 'bytes that are not WebAssembly',
      material: () => ({ artifact: Buffer.from('MZ not wasm'), signature: sigFile(Buffer.from('MZ not wasm')) }),
      message: 'artifact verification failed for pb-test@1.0.0: invalid artifact: not a WASM file',
      metric: 'apx_artifacts_verification_failures_total{reason="ARTIFACT_NOT_WASM"}',
      severity: 'ERROR',
    },
    {
      name: 'another policy, signed, renamed to this reference (dev, no binding required)',
      material: () => {
        const other = wasm('pb-other@1.0.0');
        return { artifact: other, signature: sigFile(other) };
      },
      message:
        'artifact verification failed for pb-test@1.0.0: embedded name mismatch: the module says pb-other@1.0.0, loaded as pb-test@1.0.0',
      metric: 'apx_artifacts_verification_failures_total{reason="EMBEDDED_NAME_MISMATCH"}',
      severity: 'ERROR',
      securityEvent: 'artifact_substitution',
    },
    {
      name: 'a signature by another key',
      material: () => ({ artifact: WASM, signature: sigFile(WASM, stranger.privateKey) }),
      message:
        'artifact verification failed for pb-test@1.0.0: signature verification failed: ECDSA signature verification failed',
      metric: 'apx_artifacts_verification_failures_total{reason="SIGNATURE_INVALID"}',
      severity: 'ERROR',
      tampering: true,
    },
    {
      name: 'an artifact over 10 MiB',
      material: () => {
        const big = Buffer.concat([WASM, Buffer.alloc(10 * 1024 * 1024)]);
        return { artifact: big, signature: sigFile(big) };
      },
      message: `artifact verification failed for pb-test@1.0.0: artifact too large: ${WASM.length + 10 * 1024 * 1024} bytes (max: 10485760)`,
      metric: 'apx_artifacts_verification_failures_total{reason="ARTIFACT_TOO_LARGE"}',
      severity: 'ERROR',
      noDigest: true,
    },
  ];

  for (const c of cases) {
    it(`rejects ${c.name}`, async () => {
      const h = await harness({ APX_POLICIES: 'pb-test@1.0.0', ...c.env }, (s) => s.put('pb-test@1.0.0', c.material()));
      try {
        assert.equal(h.worker.policies.get('pb-test'), undefined, 'nothing is loaded');
        assert.equal(h.worker.policies.ready(), false);
        const line = h.logs.find((l) => l.message === c.message);
        assert.ok(line, `log line "${c.message}" in ${JSON.stringify(h.logs.map((l) => l.message))}`);
        assert.equal(line.severity, c.severity);
        assert.equal(line.policy_ref, 'pb-test@1.0.0');
        if (!c.noDigest) assert.match(String(line.digest), /^sha256:[0-9a-f]{64}$/);
        assert.equal(line.security_event, c.securityEvent ?? (c.tampering ? 'artifact_tampering' : undefined));
        assert.equal(await metric(h.worker, c.metric), 1);
        const ready = await fetch(`${h.worker.url}/readyz`);
        assert.equal(ready.status, 503);
        assert.equal((await fetch(`${h.worker.url}/healthz`)).status, 200, 'still live');
      } finally {
        await h.worker.stop();
      }
    });
  }

  it('blocks a tampered digest so it is not verified again silently', async () => {
    const h = await harness({ APX_POLICIES: 'pb-test@1.0.0' }, (s) =>
      s.put('pb-test@1.0.0', { artifact: tampered, signature: sigFile(WASM) }),
    );
    try {
      await h.worker.policies.reload(); // nothing to reload for a pinned policy; load directly again:
      const loader = (h.worker.policies as unknown as { options: { loader: { load(r: ArtifactRef): Promise<unknown> } } }).options
        .loader;
      await assert.rejects(loader.load({ policyId: 'pb-test', version: '1.0.0' }), { code: 'DIGEST_BLOCKED' });
      assert.ok(h.logs.some((l) => l.reason === 'DIGEST_BLOCKED' && l.security_event === 'artifact_tampering'));
    } finally {
      await h.worker.stop();
    }
  });

  it('blocks only the (bytes, signature) pair: a junk .sig does not keep genuine bytes with their genuine .sig out', async () => {
    const h = await harness({ APX_POLICIES: 'pb-test@1.0.0' }, (s) =>
      s.put('pb-test@1.0.0', { artifact: WASM, signature: sigFile(WASM, stranger.privateKey) }),
    );
    try {
      const loader = (h.worker.policies as unknown as { options: { loader: { load(r: ArtifactRef): Promise<unknown> } } }).options
        .loader;
      const ref = { policyId: 'pb-test', version: '1.0.0' };
      await assert.rejects(loader.load(ref), { code: 'DIGEST_BLOCKED' });
      h.source.put('pb-test@1.0.0', { artifact: WASM, signature: Buffer.from('not a signature at all') });
      await assert.rejects(loader.load(ref), { code: 'SIGNATURE_MALFORMED' });
      h.source.put('pb-test@1.0.0', { artifact: WASM, signature: sigFile(WASM) });
      const loaded = (await loader.load(ref)) as { refText: string };
      assert.equal(loaded.refText, 'pb-test@1.0.0');
    } finally {
      await h.worker.stop();
    }
  });

  it('reports an unreachable store and stays live', async () => {
    const h = await harness({ APX_POLICIES: 'pb-test@1.0.0' }, (s) => {
      s.failing = true;
    });
    try {
      assert.ok(
        h.logs.some((l) =>
          String(l.message).startsWith('artifact verification failed for pb-test@1.0.0: store unavailable: memory://test'),
        ),
      );
      assert.equal((await fetch(`${h.worker.url}/healthz`)).status, 200);
    } finally {
      await h.worker.stop();
    }
  });
});

describe('worker: serving', () => {
  let h: Harness;
  before(async () => {
    h = await harness({}, (s) => s.put('pb-test@1.0.0', { artifact: WASM, signature: sigFile(WASM) }));
  });
  after(() => h.worker.stop());

  it('is ready once the policy is verified, and lists it with digest, key id and time', async () => {
    assert.equal((await fetch(`${h.worker.url}/readyz`)).status, 200);
    const list = (await (await fetch(`${h.worker.url}/v1/policies`)).json()) as Array<Record<string, unknown>>;
    assert.equal(list[0]?.ref, 'pb-test@1.0.0');
    assert.equal(list[0]?.key_id, PublicKey.fromKeyObject(signer.publicKey).keyId);
    assert.match(String(list[0]?.digest), /^sha256:/);
  });

  it('decides, naming the policy and version', async () => {
    const res = await fetch(`${h.worker.url}/v1/decide`, { method: 'POST', body: JSON.stringify({ request: { deny: true } }) });
    assert.equal(res.status, 200);
    const body = (await res.json()) as Record<string, unknown>;
    assert.equal(body.allow, false);
    assert.equal(body.status, 403);
    assert.equal(body.policy, 'pb-test@1.0.0');
  });

  it('answers 429 once a declared rate limit is exhausted', async () => {
    const call = () =>
      fetch(`${h.worker.url}/v1/decide`, {
        method: 'POST',
        body: JSON.stringify({ policy: 'pb-test', request: { limit: true } }),
      });
    assert.equal((await call()).status, 200);
    assert.equal((await call()).status, 200);
    const third = await call();
    assert.equal(third.status, 429);
    assert.ok(third.headers.get('retry-after'));
  });

  it('refuses malformed requests without deciding', async () => {
    assert.equal((await fetch(`${h.worker.url}/v1/decide`, { method: 'POST', body: 'nope' })).status, 400);
    assert.equal(
      (await fetch(`${h.worker.url}/v1/decide`, { method: 'POST', body: '{"policy":"zz","request":{}}' })).status,
      404,
    );
    assert.equal((await fetch(`${h.worker.url}/v1/decide`)).status, 405);
  });

  it('exposes the runbook metrics', async () => {
    const text = await (await fetch(`${h.worker.url}/metrics`)).text();
    for (const name of [
      'apx_artifacts_verification_failures_total',
      'apx_artifacts_unsigned_blocked_total',
      'apx_artifacts_unknown_versions_total',
      'apx_decisions_total',
    ]) {
      assert.match(text, new RegExp(`# TYPE ${name} counter`));
    }
  });

  it('hot-reloads a newer signed version, and keeps the last good one when the next is tampered', async () => {
    const v110 = wasm('pb-test@1.1.0');
    h.source.put('pb-test@1.1.0', { artifact: v110, signature: sigFile(v110) });
    await h.worker.policies.reload();
    assert.equal(h.worker.policies.get('pb-test')?.refText, 'pb-test@1.1.0');
    const v120 = wasm('pb-test@1.2.0');
    const bad = Buffer.from(v120);
    bad[bad.length - 2] = 0x2c;
    h.source.put('pb-test@1.2.0', { artifact: bad, signature: sigFile(v120) });
    await h.worker.policies.reload();
    assert.equal(h.worker.policies.get('pb-test')?.refText, 'pb-test@1.1.0');
    // One line for the refusal, saying what keeps serving. The next pass finds the pair blocked
    // (DIGEST_BLOCKED, one line); passes after that find the same refusal: no line, no count.
    const refusals = () => h.logs.filter((l) => l.policy_ref === 'pb-test@1.2.0' && l.severity === 'ERROR');
    assert.deepEqual(
      refusals().map((l) => [l.reason, l.serving]),
      [['SIGNATURE_INVALID', 'pb-test@1.1.0']],
    );
    for (let pass = 0; pass < 3; pass++) await h.worker.policies.reload();
    assert.deepEqual(
      refusals().map((l) => l.reason),
      ['SIGNATURE_INVALID', 'DIGEST_BLOCKED'],
    );
    assert.equal(await metric(h.worker, 'apx_policy_reloads_total{policy="pb-test",result="rejected"}'), 2);
    assert.equal(await metric(h.worker, 'apx_artifacts_verification_failures_total{reason="SIGNATURE_INVALID"}'), 1);
    assert.equal(await metric(h.worker, 'apx_artifacts_verification_failures_total{reason="DIGEST_BLOCKED"}'), 1);
    assert.equal(await metric(h.worker, 'apx_policy_load_failures_total{reason="DIGEST_BLOCKED"}'), 3, 'every attempt');
  });

  it('refuses to roll back below the highest verified version', async () => {
    const loader = (h.worker.policies as unknown as { options: { loader: { load(r: ArtifactRef): Promise<unknown> } } }).options
      .loader;
    const v090 = wasm('pb-test@0.9.0');
    h.source.put('pb-test@0.9.0', { artifact: v090, signature: sigFile(v090) });
    await assert.rejects(loader.load({ policyId: 'pb-test', version: '0.9.0' }), {
      code: 'ROLLBACK_REFUSED',
      message:
        'artifact verification failed for pb-test@0.9.0: rollback refused: pb-test@0.9.0 is older than 1.1.0, the highest version verified for pb-test',
    });
    assert.equal(await metric(h.worker, 'apx_artifacts_verification_failures_total{reason="ROLLBACK_REFUSED"}'), 1);
  });

  it('shares one download between concurrent loads of one reference', async () => {
    const other = wasm('pb-other@1.0.0');
    h.source.put('pb-other@1.0.0', { artifact: other, signature: sigFile(other) });
    const loader = (h.worker.policies as unknown as { options: { loader: { load(r: ArtifactRef): Promise<unknown> } } }).options
      .loader;
    const before = h.source.fetches;
    await Promise.all([1, 2, 3, 4].map(() => loader.load({ policyId: 'pb-other', version: '1.0.0' })));
    assert.equal(h.source.fetches - before, 1);
    assert.equal(artifactFileName({ policyId: 'pb-other', version: '1.0.0' }), 'pb-other@1.0.0.wasm');
  });
});

describe('worker: rollback floors (APX_STATE_DIR, APX_ALLOW_ROLLBACK)', () => {
  const put = (s: MemorySource, ref: string) => {
    const bytes = wasm(ref);
    s.put(ref, { artifact: bytes, signature: sigFile(bytes) });
  };
  const store = (s: MemorySource) => {
    put(s, 'pb-test@1.0.0');
    put(s, 'pb-test@1.1.0');
  };
  const stateDir = tempDir('apx-state-');

  it('persists the floor, which survives a restart and which the allow-list does not bypass', async () => {
    const first = await harness({ APX_POLICIES: 'pb-test@1.1.0', APX_STATE_DIR: stateDir }, store);
    try {
      assert.equal(first.worker.policies.get('pb-test')?.refText, 'pb-test@1.1.0');
    } finally {
      await first.worker.stop();
    }
    assert.deepEqual(JSON.parse(readFileSync(join(stateDir, 'floors.json'), 'utf8')), { floors: { 'pb-test': '1.1.0' } });

    // A restarted worker whose allow-list names 1.0.0 explicitly still refuses it.
    const second = await harness(
      { APX_POLICIES: 'pb-test@1.0.0', APX_STATE_DIR: stateDir, ALLOWED_POLICY_VERSIONS: 'pb-test@1.0.0,1.1.0' },
      store,
    );
    try {
      assert.equal(second.worker.policies.get('pb-test'), undefined);
      const line = second.logs.find((l) => l.reason === 'ROLLBACK_REFUSED');
      assert.equal(
        line?.message,
        'artifact verification failed for pb-test@1.0.0: rollback refused: pb-test@1.0.0 is older than 1.1.0, the highest version verified for pb-test',
      );
      assert.equal(line?.security_event, 'rollback_attempt');
    } finally {
      await second.worker.stop();
    }
  });

  it('lets the operator roll back one exact reference with APX_ALLOW_ROLLBACK', async () => {
    const h = await harness(
      { APX_POLICIES: 'pb-test@1.0.0', APX_STATE_DIR: stateDir, APX_ALLOW_ROLLBACK: 'pb-test@1.0.0' },
      store,
    );
    try {
      assert.equal(h.worker.policies.get('pb-test')?.refText, 'pb-test@1.0.0');
      // The floor stays where it was: the rollback is an exception, not a new floor.
      assert.deepEqual(JSON.parse(readFileSync(join(stateDir, 'floors.json'), 'utf8')), { floors: { 'pb-test': '1.1.0' } });
    } finally {
      await h.worker.stop();
    }
  });
});
