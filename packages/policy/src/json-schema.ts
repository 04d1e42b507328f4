import { API_VERSION, KIND, LIMITS, RATE_LIMIT_KEYS, VALUE_PATTERNS } from './schema.js';

/** Where the published schema lives in the repository, and its `$id`. */
export const SCHEMA_PATH = 'schema/apx-v1.schema.json';
export const SCHEMA_ID = 'urn:apx:schema:apx-v1';

type JsonSchema = { [key: string]: unknown };

const pattern = (p: { pattern: RegExp; expect: string }, description?: string): JsonSchema => ({
  type: 'string',
  pattern: p.pattern.source,
  description: description ?? p.expect,
});

const strings = (item: JsonSchema, maxItems: number, description: string): JsonSchema => ({
  type: 'array',
  items: item,
  maxItems,
  description,
});

/** A mapping with exactly these fields; `properties`' order is the canonical order `apx fmt` writes. */
const object = (properties: Record<string, JsonSchema>, required: string[], description?: string): JsonSchema => ({
  type: 'object',
  ...(description ? { description } : {}),
  properties,
  required,
  additionalProperties: false,
});

const ref = (name: string): JsonSchema => ({ $ref: `#/$defs/${name}` });

const mutations = object(
  {
    set: {
      type: 'object',
      description: 'Headers to set: name to value.',
      propertyNames: { pattern: VALUE_PATTERNS.header.pattern.source },
      additionalProperties: { type: 'string', pattern: '^[^\\r\\n\\u0000]*$' },
    },
    remove: strings(ref('header'), 64, 'Header names to remove; a header may not be both set and removed.'),
  },
  [],
);

/**
 * The JSON Schema (draft 2020-12) of an apx/v1 policy, for editors and CI linters. It checks
 * the shape: field names, types, enumerations and value patterns, taken from the validator's
 * own patterns. What only the compiler can check stays with `apx compile` (CEL conditions,
 * CIDR host bits, route references, unique names, a header both set and removed).
 * Property order is the canonical key order of `apx fmt`.
 */
export const POLICY_JSON_SCHEMA: JsonSchema = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  $id: SCHEMA_ID,
  title: 'APX policy (apx/v1 PolicyBundle)',
  description: 'An APX policy, compiled to WebAssembly by apx compile. See docs/policy-language.md.',
  ...object(
    {
      apiVersion: { const: API_VERSION, description: `Always ${API_VERSION}.` },
      kind: { const: KIND, description: `Always ${KIND}.` },
      metadata: object(
        {
          name: pattern(VALUE_PATTERNS.name, 'Policy id: lowercase letters, digits and -, at most 63.'),
          version: pattern(VALUE_PATTERNS.semver, 'Semantic version such as 1.0.0 (quote it: YAML reads 1.0 as a number).'),
          compat: { enum: ['backward', 'forward', 'full', 'none'], description: 'Recorded, not enforced; default none.' },
          description: { type: 'string' },
        },
        ['name', 'version'],
      ),
      spec: object(
        {
          routes: {
            type: 'array',
            items: ref('route'),
            minItems: 1,
            maxItems: LIMITS.routes,
            description: 'First match wins.',
          },
          auth: object({ apiKeys: ref('apiKeys'), jwt: ref('jwt') }, []),
          ip: object(
            {
              allow: strings(ref('cidr'), LIMITS.cidrs, 'Only these addresses (when non-empty).'),
              deny: strings(ref('cidr'), LIMITS.cidrs, 'Addresses refused first.'),
            },
            [],
          ),
          rules: { type: 'array', items: ref('rule'), maxItems: LIMITS.rules, description: 'Evaluated in order.' },
          rateLimits: { type: 'array', items: ref('rateLimit'), maxItems: LIMITS.rateLimits },
          limits: object({ maxBodyBytes: { type: 'integer', minimum: 0, maximum: 0xfffffffe } }, []),
          headers: object({ request: mutations, response: mutations }, [], 'Applied by the host to allowed requests.'),
          default: { enum: ['allow', 'deny'], description: 'Decision when no rule decides; default deny.' },
        },
        ['routes'],
      ),
    },
    ['apiVersion', 'kind', 'metadata', 'spec'],
  ),
  $defs: {
    name: pattern(VALUE_PATTERNS.name),
    header: pattern(VALUE_PATTERNS.header),
    plain: pattern(VALUE_PATTERNS.plain),
    cidr: { type: 'string', pattern: '^[0-9A-Fa-f:.]+(/[0-9]{1,3})?$', description: 'IPv4 or IPv6 address, /bits optional.' },
    routeNames: strings(ref('name'), LIMITS.routes, 'Limits this entry to the named routes.'),
    route: object(
      {
        name: ref('name'),
        match: object(
          {
            hosts: strings(pattern(VALUE_PATTERNS.host), LIMITS.patterns, 'Empty or absent: any host.'),
            paths: {
              type: 'array',
              items: {
                type: 'string',
                pattern: '^/([^/?#\\s]+(/[^/?#\\s]+)*)?$',
                description: '/, or /segments; * is one segment, a final ** any rest.',
              },
              minItems: 1,
              maxItems: LIMITS.patterns,
            },
            methods: strings(pattern(VALUE_PATTERNS.method), 16, 'Empty or absent: any method.'),
          },
          ['paths'],
        ),
        auth: {
          enum: ['required', 'optional', 'none'],
          description: 'Default required when spec.auth configures anything, else none.',
        },
      },
      ['name', 'match'],
    ),
    apiKeys: object(
      {
        header: { ...ref('header'), description: 'Default X-API-Key.' },
        keys: {
          type: 'array',
          maxItems: LIMITS.apiKeys,
          items: object(
            {
              id: ref('name'),
              sha256: pattern(VALUE_PATTERNS.sha256, 'SHA-256 of the key, 64 hex digits (apx hash-key).'),
              tenant: ref('plain'),
              plan: ref('plain'),
              scopes: strings(ref('plain'), 64, 'Scopes granted to the key.'),
              roles: strings(ref('plain'), 64, 'Roles granted to the key.'),
            },
            ['id', 'sha256', 'tenant', 'plan'],
          ),
        },
      },
      ['keys'],
    ),
    jwt: object(
      {
        issuer: ref('plain'),
        jwksUri: { type: 'string', pattern: '^https://\\S+$', description: 'An https:// URL.' },
        audiences: strings(ref('plain'), 16, 'aud must contain one of these (when given).'),
        requiredScopes: strings(ref('plain'), 32, 'Every one must be granted.'),
      },
      ['issuer', 'jwksUri'],
    ),
    rule: {
      ...object(
        {
          name: ref('name'),
          when: { type: 'string', description: 'A CEL condition over request and identity.' },
          effect: { enum: ['allow', 'deny'] },
          status: { type: 'integer', minimum: 200, maximum: 599, description: 'allow: 200..299, deny: 400..599.' },
          reason: ref('plain'),
          routes: ref('routeNames'),
        },
        ['name', 'when', 'effect'],
      ),
      if: { properties: { effect: { const: 'allow' } }, required: ['effect'] },
      // biome-ignore lint/suspicious/noThenProperty: a JSON Schema keyword, never awaited
      then: { properties: { status: { type: 'integer', maximum: 299 } } },
      else: { properties: { status: { type: 'integer', minimum: 400 } } },
    },
    rateLimit: {
      ...object(
        {
          name: ref('name'),
          key: { enum: [...RATE_LIMIT_KEYS] },
          rps: { type: 'integer', minimum: 1, maximum: 1_000_000_000, description: 'Same as limit: N, window: 1s.' },
          limit: { type: 'integer', minimum: 1, maximum: 1_000_000_000 },
          window: pattern(VALUE_PATTERNS.window),
          burst: { type: 'integer', minimum: 1, maximum: 1_000_000_000, description: 'Default: limit.' },
          routes: ref('routeNames'),
        },
        ['name', 'key'],
      ),
      if: { required: ['rps'] },
      // biome-ignore lint/suspicious/noThenProperty: a JSON Schema keyword, never awaited
      then: { not: { anyOf: [{ required: ['limit'] }, { required: ['window'] }] } },
      else: { required: ['limit', 'window'] },
    },
  },
};

/** The published file's text: the schema as 2-space JSON with a final newline. */
export function policyJsonSchemaText(): string {
  return `${JSON.stringify(POLICY_JSON_SCHEMA, null, 2)}\n`;
}

/** The published schema of test files (`*.test.yaml`, apx test). */
export const TEST_SCHEMA_PATH = 'schema/apx-test.schema.json';
export const TEST_SCHEMA_ID = 'urn:apx:schema:apx-test';

const requestSchema = (required: string[]): JsonSchema =>
  object(
    {
      method: { type: 'string', description: 'As sent, e.g. GET.' },
      host: { type: 'string', description: 'Without port.' },
      path: { type: 'string', description: 'Without query string.' },
      ip: { type: 'string', description: 'Client address; absent: unknown.' },
      headers: {
        type: 'object',
        additionalProperties: { type: 'string' },
        description: 'Header name to value (quote numbers: "3"); the raw API key goes here.',
      },
      bodySize: { type: 'integer', minimum: 0 },
      jwt: {
        type: 'object',
        properties: { verified: { type: 'boolean' }, claims: { type: 'object' } },
        required: ['verified'],
        additionalProperties: false,
        description: "The host's token check: {verified: false} or {verified: true, claims: {...}}.",
      },
    },
    required,
    'The request after the host-side work (docs/policy-language.md, "Requests").',
  );

const identityName = { type: ['string', 'null'], description: 'A name, or null for none.' };

/**
 * The JSON Schema of `apx test` files, for editors. `apx test` checks the same shape itself
 * (test-suite.ts) and says which line is wrong; a request's required fields may come from
 * `defaults.request`, which a schema cannot merge, so it requires none.
 */
export const TEST_JSON_SCHEMA: JsonSchema = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  $id: TEST_SCHEMA_ID,
  title: 'APX policy tests (apx test)',
  description: 'Cases for apx test: requests and the decision fields they must produce. See docs/policy-language.md.',
  ...object(
    {
      policy: {
        type: 'string',
        minLength: 1,
        description: 'The policy, relative to this file; default: this name without .test.',
      },
      defaults: object({ request: requestSchema([]) }, [], 'Merged under every case.'),
      cases: {
        type: 'array',
        minItems: 1,
        items: object(
          {
            name: { type: 'string', minLength: 1, description: 'Unique in the file.' },
            request: requestSchema([]),
            expect: {
              ...object(
                {
                  allow: { type: 'boolean' },
                  effect: { enum: ['allow', 'deny'] },
                  status: { type: 'integer', minimum: 100, maximum: 599 },
                  reason: { type: 'string' },
                  route: identityName,
                  rule: identityName,
                  identity: object(
                    {
                      kind: { enum: ['none', 'apiKey', 'jwt'] },
                      id: { type: 'string' },
                      tenant: { type: 'string' },
                      plan: { type: 'string' },
                    },
                    [],
                  ),
                  headers: object({ request: ref('expectedMutations'), response: ref('expectedMutations') }, []),
                  rateLimits: {
                    type: 'array',
                    description: 'The charges, in order: a bucket name, or the fields to check.',
                    items: {
                      anyOf: [
                        { type: 'string' },
                        object(
                          {
                            name: { type: 'string' },
                            key: { type: 'string' },
                            value: { type: 'string' },
                            limit: { type: 'integer' },
                            windowSeconds: { type: 'integer' },
                            burst: { type: 'integer' },
                          },
                          [],
                        ),
                      ],
                    },
                  },
                },
                [],
                'Only the fields given are checked.',
              ),
              minProperties: 1,
            },
          },
          ['name', 'request', 'expect'],
        ),
      },
    },
    ['cases'],
  ),
  $defs: {
    expectedMutations: object(
      {
        set: { type: 'object', additionalProperties: { type: 'string' } },
        remove: { type: 'array', items: { type: 'string' } },
      },
      [],
    ),
  },
};

export function testJsonSchemaText(): string {
  return `${JSON.stringify(TEST_JSON_SCHEMA, null, 2)}\n`;
}
