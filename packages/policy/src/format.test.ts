import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parse, stringify } from 'yaml';
import { canonicalJson } from './canonical.js';
import { parsePolicy } from './compiler.js';
import { PolicyError } from './error.js';
import { formatPolicySource } from './format.js';
import { SAMPLES_DIR } from './testing/artifacts.js';

const samples = readdirSync(SAMPLES_DIR).filter((f) => f.endsWith('.yaml') && !f.endsWith('.test.yaml'));

/** The value with the keys of every mapping in the order `keys` picks. */
function permuted(v: unknown, pick: (keys: string[]) => string[]): unknown {
  if (Array.isArray(v)) return v.map((x) => permuted(x, pick));
  if (typeof v !== 'object' || v === null) return v;
  const rec = v as Record<string, unknown>;
  return Object.fromEntries(pick(Object.keys(rec)).map((k) => [k, permuted(rec[k], pick)]));
}

describe('apx fmt: canonical policy YAML', () => {
  it('finds the samples', () => assert.ok(samples.length >= 3));

  for (const name of samples) {
    it(`the sample ${name} is in the canonical layout (apx fmt --check passes)`, () => {
      const text = readFileSync(join(SAMPLES_DIR, name), 'utf8');
      assert.equal(formatPolicySource(text, name), text);
    });
  }

  for (const name of samples) {
    it(`is idempotent and keeps the meaning of ${name}`, () => {
      const text = readFileSync(join(SAMPLES_DIR, name), 'utf8');
      const once = formatPolicySource(text, name);
      assert.equal(formatPolicySource(once, name), once, 'formatting twice changed the bytes');
      assert.equal(canonicalJson(parsePolicy(once, name)), canonicalJson(parsePolicy(text, name)));
      // Comments survive.
      const comments = (t: string) =>
        t
          .split('\n')
          .filter((l) => l.trim().startsWith('#'))
          .map((l) => l.trim());
      assert.deepEqual(comments(once).sort(), comments(text).sort());
    });
  }

  it('gives the same bytes whatever the key order of the input (property over every sample)', () => {
    for (const name of samples) {
      const value = parse(readFileSync(join(SAMPLES_DIR, name), 'utf8'));
      const expected = formatPolicySource(stringify(value), name);
      fc.assert(
        fc.property(fc.integer(), (seed) => {
          // A deterministic shuffle of every mapping's keys from the seed.
          let s = seed >>> 0;
          const shuffled = stringify(
            permuted(value, (keys) => {
              const out = [...keys];
              for (let i = out.length - 1; i > 0; i--) {
                s = (Math.imul(s, 1103515245) + 12345) >>> 0;
                const j = s % (i + 1);
                [out[i], out[j]] = [out[j] as string, out[i] as string];
              }
              return out;
            }),
          );
          const formatted = formatPolicySource(shuffled, name);
          assert.equal(formatted, expected);
          assert.equal(formatPolicySource(formatted, name), formatted);
        }),
        { numRuns: 50 },
      );
    }
  });

  it('writes keys in the documented order, 2-space indented, { a: 1 } and [a], keeping comments with their keys', () => {
    const text = [
      '# Orders API',
      'kind: PolicyBundle',
      'apiVersion: apx/v1',
      'spec:',
      '    # default last',
      '    default: allow',
      '    routes:',
      '        - match: {paths: ["/x"]}',
      '          name: r # the only route',
      'metadata: {version: 1.0.0, name: t}',
      '',
    ].join('\n');
    assert.equal(
      formatPolicySource(text, 'p.yaml'),
      [
        '# Orders API',
        'apiVersion: apx/v1',
        'kind: PolicyBundle',
        'metadata: { name: t, version: 1.0.0 }',
        'spec:',
        '  routes:',
        '    - name: r # the only route',
        '      match: { paths: ["/x"] }',
        '  # default last',
        '  default: allow',
        '',
      ].join('\n'),
    );
  });

  it('keeps unknown keys (after the known ones) for the compiler to report', () => {
    const out = formatPolicySource('spec: {routes: [], colour: red, default: deny}\napiVersion: apx/v1\n', 'p.yaml');
    assert.equal(out, 'apiVersion: apx/v1\nspec: { routes: [], default: deny, colour: red }\n');
  });

  it('refuses text that is not one strict YAML document, naming file, line and column', () => {
    for (const [text, message] of [
      ['a: 1\na: 2\n', /p\.yaml:2:1:? .*unique/i],
      ['a: [1\n', /p\.yaml:\d+:\d+:? /],
      ['a: 1\n---\nb: 2\n', /one policy per file/],
    ] as const) {
      assert.throws(
        () => formatPolicySource(text, 'p.yaml'),
        (err: unknown) => err instanceof PolicyError && message.test(err.lines()[0] ?? ''),
      );
    }
  });
});
