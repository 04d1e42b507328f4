import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
// An independent validator (tests only): the schema is judged by ajv, not by APX's own code.
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parse, stringify } from 'yaml';
import { parsePolicy } from './compiler.js';
import { PolicyError } from './error.js';
import {
  POLICY_JSON_SCHEMA,
  policyJsonSchemaText,
  SCHEMA_PATH,
  TEST_JSON_SCHEMA,
  TEST_SCHEMA_PATH,
  testJsonSchemaText,
} from './json-schema.js';
import { parseTestSuite, TestFileError } from './test-suite.js';
import { REPO_ROOT, SAMPLES, SAMPLES_DIR } from './testing/artifacts.js';

// strictRequired off: `required` inside if/then names properties the enclosing object declares.
const ajv = new Ajv2020({ allErrors: true, strict: true, strictRequired: false });
const validate = ajv.compile(POLICY_JSON_SCHEMA);

function schemaAccepts(value: unknown): boolean {
  return validate(value) === true;
}

function compilerAccepts(value: unknown): boolean {
  try {
    parsePolicy(stringify(value), 'p.yaml');
    return true;
  } catch (err) {
    assert.ok(err instanceof PolicyError, String(err));
    return false;
  }
}

const clone = <T>(v: T): T => structuredClone(v);

/** A policy that uses every field the schema defines, valid for both the schema and the compiler. */
const MAXIMAL = {
  apiVersion: 'apx/v1',
  kind: 'PolicyBundle',
  metadata: { name: 'pb-all', version: '1.2.3-rc.1', compat: 'full', description: 'every field' },
  spec: {
    routes: [
      {
        name: 'api',
        match: { hosts: ['api.example.com', '*.example.org'], paths: ['/v1/*/items/**', '/'], methods: ['GET', 'POST'] },
        auth: 'optional',
      },
    ],
    auth: {
      apiKeys: {
        header: 'X-Key',
        keys: [
          {
            id: 'k1',
            sha256: 'a'.repeat(64),
            tenant: 'acme',
            plan: 'pro',
            scopes: ['items:read'],
            roles: ['admin'],
          },
        ],
      },
      jwt: {
        issuer: 'https://id.example.com/',
        jwksUri: 'https://id.example.com/jwks.json',
        audiences: ['api'],
        requiredScopes: ['items:read'],
      },
    },
    ip: { allow: ['10.0.0.0/8', '2001:db8::/32', '192.0.2.1'], deny: ['10.66.0.0/16'] },
    rules: [
      {
        name: 'no-delete',
        when: 'request.method == "DELETE"',
        effect: 'deny',
        status: 405,
        reason: 'no deletes',
        routes: ['api'],
      },
      { name: 'admins', when: '"admin" in identity.roles', effect: 'allow', status: 202 },
    ],
    rateLimits: [
      { name: 'per-tenant', key: 'identity.tenant', rps: 10, burst: 20, routes: ['api'] },
      { name: 'per-ip', key: 'request.ip', limit: 100, window: '1h' },
    ],
    limits: { maxBodyBytes: 1024 },
    headers: {
      request: { set: { 'X-Tenant': 'yes' }, remove: ['Cookie'] },
      response: { set: { 'Cache-Control': 'no-store' }, remove: ['Server'] },
    },
    default: 'deny',
  },
};

type Json = Record<string, unknown>;

/** Every mapping of a value with its path, parents first. */
function mappings(v: unknown, path: (string | number)[] = []): { path: (string | number)[]; value: Json }[] {
  if (Array.isArray(v)) return v.flatMap((x, i) => mappings(x, [...path, i]));
  if (typeof v !== 'object' || v === null) return [];
  const here = [{ path, value: v as Json }];
  return [...here, ...Object.entries(v).flatMap(([k, x]) => mappings(x, [...path, k]))];
}

function at(root: unknown, path: (string | number)[]): Json {
  let v = root as Json;
  for (const seg of path) v = (v as Record<string | number, unknown>)[seg] as Json;
  return v;
}

/** The schema node of a data path (following $ref, properties and items). */
function schemaAt(path: (string | number)[]): Json {
  const defs = POLICY_JSON_SCHEMA.$defs as Record<string, Json>;
  const deref = (s: Json): Json => (typeof s.$ref === 'string' ? deref(defs[s.$ref.slice('#/$defs/'.length)] as Json) : s);
  let s = deref(POLICY_JSON_SCHEMA);
  for (const seg of path) {
    s = deref((typeof seg === 'number' ? s.items : (s.properties as Record<string, Json>)[seg]) as Json);
  }
  return s;
}

describe('JSON Schema of apx/v1 (checked with ajv)', () => {
  it(`is published at ${SCHEMA_PATH}, identical to the one apx schema prints`, () => {
    // Compared as JSON: the file is laid out by the repository's formatter (biome).
    const published = JSON.parse(readFileSync(join(REPO_ROOT, SCHEMA_PATH), 'utf8'));
    assert.deepEqual(
      published,
      JSON.parse(policyJsonSchemaText()),
      `regenerate it: ./tools/cli/apx schema > ${SCHEMA_PATH} && npx biome format --write ${SCHEMA_PATH}`,
    );
    assert.equal(published.$schema, 'https://json-schema.org/draft/2020-12/schema');
  });

  for (const name of SAMPLES) {
    it(`validates the sample ${name}`, () => {
      const value = parse(readFileSync(join(SAMPLES_DIR, name), 'utf8'));
      assert.ok(schemaAccepts(value), ajv.errorsText(validate.errors));
    });
  }

  it('accepts a policy that uses every field, as the compiler does', () => {
    assert.ok(schemaAccepts(MAXIMAL), ajv.errorsText(validate.errors));
    assert.ok(compilerAccepts(MAXIMAL));
  });

  it('rejects typos of field names, and so does the compiler', () => {
    const typos: [string, (p: Json) => void][] = [
      [
        'spec.ratelimits',
        (p) => {
          const spec = p.spec as Json;
          spec.ratelimits = spec.rateLimits;
          delete spec.rateLimits;
        },
      ],
      [
        'spec.rateLimit',
        (p) => {
          const spec = p.spec as Json;
          spec.rateLimit = spec.rateLimits;
          delete spec.rateLimits;
        },
      ],
      ['spec.rateLimits[0].brust', (p) => Object.assign(at(p, ['spec', 'rateLimits', 0]), { brust: 5 })],
      [
        'spec.routes[0].match.path',
        (p) => {
          const m = at(p, ['spec', 'routes', 0, 'match']);
          m.path = m.paths;
          delete m.paths;
        },
      ],
      ['spec.auth.apiKeys.keys[0].scope', (p) => Object.assign(at(p, ['spec', 'auth', 'apiKeys', 'keys', 0]), { scope: ['x'] })],
      ['metadata.versoin', (p) => Object.assign(at(p, ['metadata']), { versoin: '1.0.0' })],
    ];
    for (const [what, mutate] of typos) {
      const p = clone(MAXIMAL) as Json;
      mutate(p);
      assert.equal(schemaAccepts(p), false, `schema accepted ${what}`);
      assert.equal(compilerAccepts(p), false, `compiler accepted ${what}`);
    }
  });

  it('agrees with the compiler on an unknown field in every mapping and every missing required field', () => {
    const declared = new Set<string>();
    const used = new Set<string>();
    for (const { path, value } of mappings(MAXIMAL)) {
      const schema = schemaAt(path);
      if (schema.additionalProperties !== false) continue; // headers.set: any header name
      const extra = clone(MAXIMAL);
      at(extra, path).zzUnknown = 1;
      assert.equal(schemaAccepts(extra), false, `schema accepted an unknown field in ${path.join('.')}`);
      assert.equal(compilerAccepts(extra), false, `compiler accepted an unknown field in ${path.join('.')}`);
      for (const field of (schema.required as string[]) ?? []) {
        assert.ok(field in value, `MAXIMAL lacks ${path.join('.')}.${field}`);
        const missing = clone(MAXIMAL);
        delete at(missing, path)[field];
        assert.equal(schemaAccepts(missing), false, `schema accepted ${path.join('.')} without ${field}`);
        assert.equal(compilerAccepts(missing), false, `compiler accepted ${path.join('.')} without ${field}`);
      }
      const shape = path.map((s) => (typeof s === 'number' ? '[]' : s)).join('.');
      for (const field of Object.keys(schema.properties as Json)) declared.add(`${shape}.${field}`);
      for (const field of Object.keys(value)) used.add(`${shape}.${field}`);
    }
    // Every field the schema declares is used by MAXIMAL, which the compiler accepts.
    assert.deepEqual(
      [...declared].filter((f) => !used.has(f)),
      [],
    );
  });

  it('agrees with the compiler on wrong values: what the schema rejects, the compiler rejects', () => {
    const cases: [string, (p: Json) => void][] = [
      ['version 1.0 read as a number', (p) => Object.assign(at(p, ['metadata']), { version: 1.0 })],
      ['version not semver', (p) => Object.assign(at(p, ['metadata']), { version: 'one' })],
      ['uppercase name', (p) => Object.assign(at(p, ['metadata']), { name: 'PB' })],
      ['compat enum', (p) => Object.assign(at(p, ['metadata']), { compat: 'forwards' })],
      ['default enum', (p) => Object.assign(at(p, ['spec']), { default: 'permit' })],
      ['route auth enum', (p) => Object.assign(at(p, ['spec', 'routes', 0]), { auth: 'yes' })],
      ['lowercase method', (p) => Object.assign(at(p, ['spec', 'routes', 0, 'match']), { methods: ['get'] })],
      ['path without /', (p) => Object.assign(at(p, ['spec', 'routes', 0, 'match']), { paths: ['v1'] })],
      ['no routes', (p) => Object.assign(at(p, ['spec']), { routes: [] })],
      ['allow with a deny status', (p) => Object.assign(at(p, ['spec', 'rules', 1]), { status: 403 })],
      ['deny with an allow status', (p) => Object.assign(at(p, ['spec', 'rules', 0]), { status: 200 })],
      ['rps and limit', (p) => Object.assign(at(p, ['spec', 'rateLimits', 0]), { limit: 5 })],
      ['neither rps nor limit', (p) => delete at(p, ['spec', 'rateLimits', 1]).window],
      ['bad window', (p) => Object.assign(at(p, ['spec', 'rateLimits', 1]), { window: '1w' })],
      ['rate-limit key', (p) => Object.assign(at(p, ['spec', 'rateLimits', 1]), { key: 'identity.plan' })],
      ['short hash', (p) => Object.assign(at(p, ['spec', 'auth', 'apiKeys', 'keys', 0]), { sha256: 'abc' })],
      ['http jwks', (p) => Object.assign(at(p, ['spec', 'auth', 'jwt']), { jwksUri: 'http://x/jwks' })],
      ['negative body limit', (p) => Object.assign(at(p, ['spec', 'limits']), { maxBodyBytes: -1 })],
      ['CIDR of a name', (p) => Object.assign(at(p, ['spec', 'ip']), { allow: ['example.com'] })],
      ['header name with a space', (p) => Object.assign(at(p, ['spec', 'headers', 'request']), { set: { 'X A': '1' } })],
      ['condition not a string', (p) => Object.assign(at(p, ['spec', 'rules', 0]), { when: true })],
    ];
    for (const [what, mutate] of cases) {
      const p = clone(MAXIMAL) as Json;
      mutate(p);
      assert.equal(schemaAccepts(p), false, `schema accepted: ${what}`);
      assert.equal(compilerAccepts(p), false, `compiler accepted: ${what}`);
    }
  });
});

describe('JSON Schema of apx test files (checked with ajv)', () => {
  const validateTests = ajv.compile(TEST_JSON_SCHEMA);
  const tests = readdirSync(SAMPLES_DIR).filter((f) => f.endsWith('.test.yaml'));

  function suiteAccepts(value: unknown): boolean {
    try {
      parseTestSuite(stringify(value), 't.test.yaml');
      return true;
    } catch (err) {
      assert.ok(err instanceof TestFileError, String(err));
      return false;
    }
  }

  it(`is published at ${TEST_SCHEMA_PATH}`, () => {
    const published = JSON.parse(readFileSync(join(REPO_ROOT, TEST_SCHEMA_PATH), 'utf8'));
    assert.deepEqual(
      published,
      JSON.parse(testJsonSchemaText()),
      `regenerate it: ./tools/cli/apx schema --tests > ${TEST_SCHEMA_PATH}`,
    );
  });

  it('validates every sample test file, as apx test reads them', () => {
    assert.ok(tests.length >= 3);
    for (const name of tests) {
      const value = parse(readFileSync(join(SAMPLES_DIR, name), 'utf8'));
      assert.ok(validateTests(value), `${name}: ${ajv.errorsText(validateTests.errors)}`);
      assert.ok(suiteAccepts(value), name);
    }
  });

  it('rejects typos and wrong types, and so does apx test', () => {
    const base = parse(readFileSync(join(SAMPLES_DIR, 'payments-api.test.yaml'), 'utf8')) as Json;
    const cases: [string, (t: Json) => void][] = [
      ['expect.rout', (t) => Object.assign(at(t, ['cases', 0, 'expect']), { rout: 'x' })],
      [
        'expct',
        (t) => {
          const c = at(t, ['cases', 0]);
          c.expct = c.expect;
          delete c.expect;
        },
      ],
      ['identity.tenent', (t) => Object.assign(at(t, ['cases', 0, 'expect', 'identity']), { tenent: 'a' })],
      ['request.header', (t) => Object.assign(at(t, ['cases', 0, 'request']), { header: {} })],
      ['a number header', (t) => Object.assign(at(t, ['cases', 0, 'request', 'headers']), { 'X-Depth': 3 })],
      ['allow: "yes"', (t) => Object.assign(at(t, ['cases', 0, 'expect']), { allow: 'yes' })],
      ['effect: permit', (t) => Object.assign(at(t, ['cases', 0, 'expect']), { effect: 'permit' })],
      ['rateLimits[0].windw', (t) => Object.assign(at(t, ['cases', 0, 'expect', 'rateLimits', 0]), { windw: 1 })],
      ['empty expect', (t) => Object.assign(at(t, ['cases', 0]), { expect: {} })],
      ['no cases', (t) => Object.assign(t, { cases: [] })],
      ['default (no s)', (t) => Object.assign(t, { default: {} })],
    ];
    for (const [what, mutate] of cases) {
      const t = structuredClone(base);
      mutate(t);
      assert.equal(validateTests(t), false, `schema accepted ${what}`);
      assert.equal(suiteAccepts(t), false, `apx test accepted ${what}`);
    }
  });
});
