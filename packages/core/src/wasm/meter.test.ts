import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import wabtInit from 'wabt';
import { CoreErrorCode, isVerificationError } from '../error.js';
import { PublicKey } from '../keys/public-key.js';
import { SignatureVerifier } from '../signature/verifier.js';
import { policyModule, signatureFile } from '../testing/policy-module.js';
import { keysTrust } from '../verify/input.js';
import { verifyPolicyArtifact } from '../verify/verify-policy-artifact.js';
import { METER_MODULE, METER_REFUEL } from './abi.js';
import { type PolicyFault, PolicyHost } from './host.js';
import { FUEL_CHUNK, meterModule } from './meter.js';

const wabt = await wabtInit();
const wat = (text: string, features: Record<string, boolean> = {}): Uint8Array => {
  const mod = wabt.parseWat('t.wat', text, features);
  try {
    mod.resolveNames();
    mod.validate();
    return mod.toBinary({}).buffer;
  } finally {
    mod.destroy();
  }
};

/** Instantiates the metered form with a refuel that counts its calls (and may stop). */
function metered(bytes: Uint8Array, imports: WebAssembly.Imports = {}, stopAfter = Number.POSITIVE_INFINITY) {
  const calls = { refuel: 0 };
  const module = new WebAssembly.Module(meterModule(bytes));
  const instance = new WebAssembly.Instance(module, {
    ...imports,
    [METER_MODULE]: {
      [METER_REFUEL]: () => {
        if (++calls.refuel > stopAfter) throw new Error('out of fuel');
        return FUEL_CHUNK;
      },
    },
  });
  return { exports: instance.exports as Record<string, (...args: number[]) => number>, calls, module };
}

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const trust = keysTrust(new SignatureVerifier(PublicKey.fromKeyObject(publicKey)));
const verified = (bytes: Buffer, version = '1.0.0') =>
  verifyPolicyArtifact({
    material: { ref: { policyId: 'pb-loop', version }, artifact: bytes, signature: signatureFile(bytes, privateKey) },
    trust,
    policy: { environment: 'dev', strict: true, requireBinding: false },
  });
const request = { method: 'GET', host: 'h', path: '/' };

describe('metering (bounded execution of verified modules)', () => {
  test('a metered module computes what the original computes: calls, loops, recursion, tables, globals', () => {
    const source = wat(`(module
      (type $un (func (param i32) (result i32)))
      (import "host" "twice" (func $twice (param i32) (result i32)))
      (table 3 funcref)
      (elem (i32.const 0) $fact $sum $twice)
      (global $g (mut i32) (i32.const 7))
      (global $f funcref (ref.func $sum))
      (func $fact (export "fact") (param i32) (result i32)
        (if (result i32) (i32.le_u (local.get 0) (i32.const 1))
          (then (i32.const 1))
          (else (i32.mul (local.get 0) (call $fact (i32.sub (local.get 0) (i32.const 1)))))))
      (func $sum (export "sum") (param $n i32) (result i32) (local $acc i32)
        (block $done
          (loop $next
            (br_if $done (i32.eqz (local.get $n)))
            (local.set $acc (i32.add (local.get $acc) (local.get $n)))
            (local.set $n (i32.sub (local.get $n) (i32.const 1)))
            (br $next)))
        (local.get $acc))
      (func (export "indirect") (param i32 i32) (result i32)
        (call_indirect (type $un) (local.get 1) (local.get 0)))
      (func (export "g") (result i32) (global.set $g (i32.add (global.get $g) (i32.const 1))) (global.get $g))
      (func (export "viaHost") (param i32) (result i32) (call $twice (call $sum (local.get 0)))))`);
    const host = { host: { twice: (x: number) => 2 * x } };
    const plain = new WebAssembly.Instance(new WebAssembly.Module(source), host).exports as Record<
      string,
      (...a: number[]) => number
    >;
    const { exports } = metered(source, host);
    for (const n of [0, 1, 5, 10]) assert.equal(exports.fact?.(n), plain.fact?.(n));
    for (const n of [0, 1, 1000]) assert.equal(exports.sum?.(n), plain.sum?.(n));
    for (const [i, x] of [
      [0, 5],
      [1, 100],
      [2, 21],
    ] as const) {
      assert.equal(exports.indirect?.(i, x), plain.indirect?.(i, x));
    }
    assert.equal(exports.g?.(), 8);
    assert.equal(exports.viaHost?.(10), plain.viaHost?.(10));
  });

  test('every loop iteration and call is charged: a long loop calls refuel, an endless one is stopped', () => {
    const source = wat(`(module
      (func (export "count") (param $n i32) (result i32) (local $i i32)
        (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1))) (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
        (local.get $i))
      (func (export "forever") (loop $l (br $l)))
      (func $r (export "recurse") (param i32) (result i32)
        (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 0)) (else (call $r (i32.sub (local.get 0) (i32.const 1)))))))`);
    const long = metered(source);
    assert.equal(long.exports.count?.(3_000_000), 3_000_000);
    assert.ok(long.calls.refuel >= 3, `refuel called ${long.calls.refuel} times for 3M iterations`);
    const endless = metered(source, {}, 5);
    assert.throws(() => endless.exports.forever?.(), /out of fuel/);
    assert.equal(endless.calls.refuel, 6);
    const calls = metered(source);
    // No loop at all: 5,000 nested calls, 20 times, pay for themselves at each entry.
    for (let i = 0; i < 20; i++) assert.equal(calls.exports.recurse?.(5000), 0);
    assert.ok(calls.calls.refuel >= 1, 'function entries are charged');
  });

  test('refuses what it cannot meter, and what would reach the host', () => {
    const simd = wat('(module (func (export "f") (drop (v128.const i32x4 0 0 0 0))))', { simd: true });
    assert.throws(() => meterModule(simd), { code: CoreErrorCode.ARTIFACT_ABI_MISMATCH, message: /SIMD/ });
    const tableFill = wat(
      '(module (table 1 funcref) (func (export "f") (table.fill 0 (i32.const 0) (ref.null func) (i32.const 1))))',
      {
        reference_types: true,
        bulk_memory: true,
      },
    );
    assert.throws(() => meterModule(tableFill), { code: CoreErrorCode.ARTIFACT_ABI_MISMATCH, message: /table bulk/ });
    const squat = wat(`(module (import "${METER_MODULE}" "${METER_REFUEL}" (func (result i32))))`);
    assert.throws(() => meterModule(squat), { code: CoreErrorCode.ARTIFACT_ABI_MISMATCH, message: /reserves/ });
    assert.throws(() => meterModule(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 10, 5, 1])), {
      code: CoreErrorCode.ARTIFACT_INVALID_WASM,
    });
  });

  test('on damaged modules: only VerificationErrors, and never a valid module made from an invalid one', () => {
    // Found by this property on Node 24: the first section id zeroed turns the type section
    // into a custom section; the function's type 0 would then have been refuel's, appended.
    const typeless = policyModule('pb-loop', '1.0.0', { spin: 5 });
    typeless[8] = 0;
    assert.throws(() => meterModule(typeless), { code: CoreErrorCode.ARTIFACT_INVALID_WASM });
    const seeds = [
      policyModule('pb-loop', '1.0.0', { spin: 5 }),
      policyModule('pb-loop', '1.0.0', { spin: Number.POSITIVE_INFINITY }),
    ];
    fc.assert(
      fc.property(
        fc.constantFrom(...seeds),
        fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 4 }),
        fc.option(fc.nat(), { nil: undefined }),
        (seed, flips, cut) => {
          const bytes = Uint8Array.from(seed);
          for (const [at, value] of flips) bytes[8 + (at % (bytes.length - 8))] = value;
          const damaged = cut === undefined ? bytes : bytes.subarray(0, 8 + (cut % (bytes.length - 8)));
          let out: Uint8Array;
          try {
            out = meterModule(damaged);
          } catch (err) {
            assert.ok(isVerificationError(err), `not a VerificationError: ${String(err)}`);
            return;
          }
          assert.equal(WebAssembly.validate(out), WebAssembly.validate(damaged), 'metering changed validity');
        },
      ),
      { numRuns: 5000 },
    );
  });

  test('a verified policy that never returns is stopped at its deadline, denied, and never entered again', () => {
    const faults: PolicyFault[] = [];
    const host = PolicyHost.load(verified(policyModule('pb-loop', '1.0.0', { spin: Number.POSITIVE_INFINITY })), {
      onFault: (f) => faults.push(f),
      deadlineMs: 20,
    });
    const first = host.decide(request);
    assert.equal(first.effect, 'deny');
    assert.equal(first.status, 503);
    assert.match(first.reason as string, /deadline/);
    assert.equal(host.healthy, false);
    assert.deepEqual(
      faults.map((f) => f.kind),
      ['deadline'],
    );
    assert.match(faults[0]?.message as string, /20 ms deadline/);
    // Later decisions are the same deny at once, and do not report again.
    assert.equal(host.decide(request).status, 503);
    assert.equal(faults.length, 1);
  });

  test('a slow policy that finishes within its deadline decides normally', () => {
    const host = PolicyHost.load(verified(policyModule('pb-loop', '1.0.0', { spin: 2_000_000 })), { deadlineMs: 10_000 });
    for (let i = 0; i < 3; i++) assert.equal(host.decide(request).effect, 'allow');
    assert.equal(host.healthy, true);
  });
});
