import type { PolicyDecision, PolicyRequest } from '@apx/core';
import { type Document, isMap, isNode, isScalar, isSeq, LineCounter, type Node, parseAllDocuments, visit } from 'yaml';
import { REQUEST_FIELDS, requestFromValue } from './request.js';
import { didYouMean } from './suggest.js';

/** `payments-api.test.yaml` tests `payments-api.yaml` (the file beside it, unless `policy:` names another). */
export const TEST_SUFFIX = '.test.yaml';

/** Test files are small; a bigger one is a mistake. */
const MAX_TEST_BYTES = 4 * 1024 * 1024;

/** The fields an `expect` may check, with what each must be. */
const EXPECT_FIELDS = ['allow', 'effect', 'status', 'reason', 'route', 'rule', 'identity', 'headers', 'rateLimits'] as const;
const IDENTITY_FIELDS = ['kind', 'id', 'tenant', 'plan'];
const CHARGE_FIELDS = ['name', 'key', 'value', 'limit', 'windowSeconds', 'burst'];

export interface TestCase {
  name: string;
  /** 1-based line of the case in its file. */
  line: number;
  request: PolicyRequest;
  /** The expected decision: only the fields given are checked (docs/policy-language.md). */
  expect: Record<string, unknown>;
}

export interface TestSuite {
  /** The policy source as written in `policy:` (relative to the test file), or undefined: the default. */
  policy: string | undefined;
  cases: TestCase[];
}

/** A test file that cannot be run: one line naming the file, position, case and field. */
export class TestFileError extends Error {
  override readonly name = 'TestFileError';
}

/** One difference between the expected and the actual decision. */
export interface Mismatch {
  /** Path in the decision: `status`, `identity.id`, `rateLimits[0].value`, `headers.request.set.X-A`. */
  field: string;
  expected: unknown;
  actual: unknown;
}

type Where = { line: number; column: number };

/**
 * Reads a test file:
 *
 *   policy: payments-api.yaml          # optional; default: this file's name without .test
 *   defaults: { request: {...} }       # optional; merged under every case's request
 *   cases:
 *     - name: partner creates a payment
 *       request: { method: POST, host: api.example.com, path: /v1/payments, headers: {...} }
 *       expect: { allow: true, status: 200, route: payments, rule: null, identity: {id: acme-prod} }
 *
 * Throws TestFileError with the first problem.
 */
export function parseTestSuite(text: string, file: string): TestSuite {
  if (Buffer.byteLength(text, 'utf8') > MAX_TEST_BYTES) throw new TestFileError(`${file}: larger than ${MAX_TEST_BYTES} bytes`);
  const lc = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lc, uniqueKeys: true, strict: true, prettyErrors: false });
  const at = (offset: number): Where => {
    const { line, col } = lc.linePos(offset);
    return { line, column: col };
  };
  const fail = (where: Where, message: string): never => {
    throw new TestFileError(`${file}:${where.line}:${where.column} ${message}`);
  };
  if (!Array.isArray(docs) || docs.length === 0) fail({ line: 1, column: 1 }, 'empty test file: expected a mapping with cases');
  if (docs.length > 1) fail(at(docs[1]?.range[0] ?? 0), 'one test suite per file: found more than one YAML document');
  const doc = docs[0] as Document.Parsed;
  const error = doc.errors[0];
  if (error) fail(at(error.pos[0]), (error.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, ''));
  visit(doc, {
    Alias(_, node) {
      fail(at(node.range?.[0] ?? 0), `YAML aliases are not allowed (*${node.source}); repeat the value`);
    },
  });

  /** Position of the node at a path of keys and indexes (or of its nearest parent). */
  const locate = (path: (string | number)[], atKey = false): Where => {
    let node: unknown = doc.contents;
    let offset = (doc.contents as Node | null)?.range?.[0] ?? 0;
    for (const [i, seg] of path.entries()) {
      let next: unknown;
      if (isMap(node) && typeof seg === 'string') {
        const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === seg);
        if (atKey && i === path.length - 1 && isNode(pair?.key)) return at(pair.key.range?.[0] ?? offset);
        next = pair?.value;
      } else if (isSeq(node) && typeof seg === 'number') next = node.items[seg];
      if (!isNode(next)) break;
      node = next;
      offset = next.range?.[0] ?? offset;
    }
    return at(offset);
  };

  const root = doc.toJS({ maxAliasCount: 0 }) as unknown;
  if (!isRecord(root)) fail(locate([]), 'expected a mapping with cases (and optionally policy, defaults)');
  const top = root as Record<string, unknown>;
  unknownKeys(top, ['policy', 'defaults', 'cases'], [], locate, fail);
  if (top.policy !== undefined && (typeof top.policy !== 'string' || top.policy === ''))
    fail(locate(['policy']), 'policy: expected the path of the policy source, relative to this file');
  let defaults: Record<string, unknown> = {};
  if (top.defaults !== undefined) {
    if (!isRecord(top.defaults)) fail(locate(['defaults']), 'defaults: expected a mapping with request');
    unknownKeys(top.defaults as Record<string, unknown>, ['request'], ['defaults'], locate, fail);
    const request = (top.defaults as Record<string, unknown>).request;
    if (request !== undefined && !isRecord(request))
      fail(locate(['defaults', 'request']), 'defaults.request: expected a mapping');
    defaults = (request as Record<string, unknown> | undefined) ?? {};
    for (const k of Object.keys(defaults)) {
      if (!(REQUEST_FIELDS as readonly string[]).includes(k))
        fail(locate(['defaults', 'request', k], true), `defaults.request.${k}: unknown field${didYouMean(k, REQUEST_FIELDS)}`);
    }
  }
  if (!Array.isArray(top.cases) || top.cases.length === 0)
    fail(locate(top.cases === undefined ? [] : ['cases']), 'cases: expected a non-empty list of test cases');

  const names = new Set<string>();
  const cases = (top.cases as unknown[]).map((raw, i): TestCase => {
    const path = ['cases', i];
    const label = () => `case ${i + 1}`;
    if (!isRecord(raw)) fail(locate(path), `${label()}: expected a mapping with name, request and expect`);
    const c = raw as Record<string, unknown>;
    if (typeof c.name !== 'string' || c.name.trim() === '')
      fail(locate([...path, 'name']), `${label()}: name: expected a string`);
    const name = c.name as string;
    const inCase = (field: string) => `case "${name}": ${field}`;
    if (names.has(name)) fail(locate([...path, 'name']), `${inCase('name')}: a second case with this name; names must be unique`);
    names.add(name);
    unknownKeys(c, ['name', 'request', 'expect'], path, locate, fail, inCase);
    if (!isRecord(c.request))
      fail(locate([...path, 'request']), `${inCase('request')}: expected a mapping (method, host, path, ...)`);
    const merged = mergeRequest(defaults, c.request as Record<string, unknown>);
    const parsed = requestFromValue(merged);
    if ('problem' in parsed) {
      const field = parsed.problem.field;
      const head = field.split('.')[0] ?? '';
      const inRequest = head !== '' && Object.hasOwn(c.request as Record<string, unknown>, head);
      const where = inRequest ? locate([...path, 'request', ...field.split('.').slice(0, 2)]) : locate([...path, 'request']);
      const { message } = parsed.problem;
      const missing = message.startsWith('missing');
      const shown = field !== '' && !missing ? `.${field}` : '';
      const note = missing
        ? Object.keys(defaults).length > 0
          ? ' (in the case or in defaults.request)'
          : ''
        : field !== '' && !inRequest
          ? ' (from defaults.request)'
          : '';
      const hint = message.startsWith('unknown field') ? didYouMean(field, REQUEST_FIELDS) : '';
      fail(where, `${inCase(`request${shown}`)}: ${message}${note}${hint}`);
    }
    if (!isRecord(c.expect) || Object.keys(c.expect as object).length === 0)
      fail(
        locate([...path, 'expect']),
        `${inCase('expect')}: expected a mapping of decision fields (allow, status, reason, ...)`,
      );
    const expect = c.expect as Record<string, unknown>;
    checkExpect(expect, (field, message) =>
      fail(
        locate([...path, 'expect', ...field], message.startsWith('unknown field')),
        `${inCase(
          `expect.${field
            .map((f) => (typeof f === 'number' ? `[${f}]` : f))
            .join('.')
            .replaceAll('.[', '[')}`,
        )}: ${message}`,
      ),
    );
    return { name, line: locate(path).line, request: (parsed as { request: PolicyRequest }).request, expect };
  });
  return { policy: top.policy as string | undefined, cases };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function unknownKeys(
  v: Record<string, unknown>,
  known: readonly string[],
  path: (string | number)[],
  locate: (p: (string | number)[], atKey?: boolean) => Where,
  fail: (w: Where, m: string) => never,
  label: (field: string) => string = (f) => f,
): void {
  for (const k of Object.keys(v)) {
    if (!known.includes(k)) {
      const shown = [...path.filter((s) => typeof s === 'string' && s !== 'cases'), k].join('.');
      fail(locate([...path, k], true), `${label(shown)}: unknown field${didYouMean(k, known)}; expected ${known.join(', ')}`);
    }
  }
}

/** A case's request over the defaults: its fields win; headers are merged (names compared case-insensitively). */
function mergeRequest(defaults: Record<string, unknown>, request: Record<string, unknown>): Record<string, unknown> {
  const merged = { ...defaults, ...request };
  if (isRecord(defaults.headers) && isRecord(request.headers)) {
    const own = new Set(Object.keys(request.headers).map((h) => h.toLowerCase()));
    const kept = Object.entries(defaults.headers).filter(([h]) => !own.has(h.toLowerCase()));
    merged.headers = { ...Object.fromEntries(kept), ...request.headers };
  }
  return merged;
}

type Report = (field: (string | number)[], message: string) => never;

function checkExpect(e: Record<string, unknown>, report: Report): void {
  for (const k of Object.keys(e)) {
    if (!(EXPECT_FIELDS as readonly string[]).includes(k))
      report([k], `unknown field${didYouMean(k, EXPECT_FIELDS)}; expected ${EXPECT_FIELDS.join(', ')}`);
  }
  if (e.allow !== undefined && typeof e.allow !== 'boolean') report(['allow'], 'expected true or false');
  if (e.effect !== undefined && e.effect !== 'allow' && e.effect !== 'deny') report(['effect'], 'expected allow or deny');
  if (typeof e.allow === 'boolean' && e.effect !== undefined && (e.effect === 'allow') !== e.allow)
    report(['effect'], `contradicts allow: ${e.allow}; give one of them`);
  if (e.status !== undefined && (!Number.isInteger(e.status) || (e.status as number) < 100 || (e.status as number) > 599))
    report(['status'], 'expected an HTTP status (100..599)');
  if (e.reason !== undefined && typeof e.reason !== 'string') report(['reason'], 'expected a string');
  for (const k of ['route', 'rule'] as const) {
    if (e[k] !== undefined && e[k] !== null && typeof e[k] !== 'string') report([k], `expected a ${k} name, or null for none`);
  }
  if (e.identity !== undefined) {
    if (!isRecord(e.identity)) report(['identity'], `expected a mapping of ${IDENTITY_FIELDS.join(', ')}`);
    for (const [k, v] of Object.entries(e.identity as Record<string, unknown>)) {
      if (!IDENTITY_FIELDS.includes(k))
        report(['identity', k], `unknown field${didYouMean(k, IDENTITY_FIELDS)}; expected ${IDENTITY_FIELDS.join(', ')}`);
      if (typeof v !== 'string') report(['identity', k], 'expected a string');
    }
  }
  if (e.headers !== undefined) {
    if (!isRecord(e.headers)) report(['headers'], 'expected a mapping with request and/or response');
    for (const [side, m] of Object.entries(e.headers as Record<string, unknown>)) {
      if (side !== 'request' && side !== 'response')
        report(['headers', side], `unknown field${didYouMean(side, ['request', 'response'])}; expected request, response`);
      if (!isRecord(m)) report(['headers', side], 'expected a mapping with set and/or remove');
      for (const [k, v] of Object.entries(m as Record<string, unknown>)) {
        if (k === 'set') {
          if (!isRecord(v) || !Object.values(v).every((x) => typeof x === 'string'))
            report(['headers', side, k], 'expected a mapping of header name to value');
        } else if (k === 'remove') {
          if (!Array.isArray(v) || !v.every((x) => typeof x === 'string'))
            report(['headers', side, k], 'expected a list of header names');
        } else report(['headers', side, k], `unknown field${didYouMean(k, ['set', 'remove'])}; expected set, remove`);
      }
    }
  }
  if (e.rateLimits !== undefined) {
    if (!Array.isArray(e.rateLimits)) report(['rateLimits'], 'expected a list of charges (a bucket name, or {name, value, ...})');
    (e.rateLimits as unknown[]).forEach((c, i) => {
      if (typeof c === 'string') return;
      if (!isRecord(c)) report(['rateLimits', i], 'expected a bucket name or a mapping');
      for (const [k, v] of Object.entries(c as Record<string, unknown>)) {
        if (!CHARGE_FIELDS.includes(k))
          report(['rateLimits', i, k], `unknown field${didYouMean(k, CHARGE_FIELDS)}; expected ${CHARGE_FIELDS.join(', ')}`);
        const numeric = k === 'limit' || k === 'windowSeconds' || k === 'burst';
        if (numeric ? !Number.isInteger(v) : typeof v !== 'string')
          report(['rateLimits', i, k], numeric ? 'expected an integer' : 'expected a string');
      }
    });
  }
}

/**
 * Compares a decision with a case's expectation. Only the fields given are checked; inside
 * them, a mapping checks the keys it gives, a list must have the same length with each entry
 * checked in order, a bucket name stands for `{name: ...}`. `allow: true` is `effect: allow`.
 */
export function compareDecision(expect: Record<string, unknown>, decision: PolicyDecision): Mismatch[] {
  const out: Mismatch[] = [];
  const actual = decision as unknown as Record<string, unknown>;
  for (const [field, want] of Object.entries(expect)) {
    if (field === 'allow') {
      if ((decision.effect === 'allow') !== want)
        out.push({ field: 'allow', expected: want, actual: decision.effect === 'allow' });
      continue;
    }
    if (field === 'rateLimits') {
      const normalized = (want as unknown[]).map((c) => (typeof c === 'string' ? { name: c } : c));
      match(normalized, decision.rateLimits, 'rateLimits', out);
      continue;
    }
    match(want, actual[field], field, out);
  }
  return out;
}

function match(want: unknown, got: unknown, field: string, out: Mismatch[]): void {
  if (Array.isArray(want)) {
    if (!Array.isArray(got) || got.length !== want.length) {
      out.push({ field, expected: want, actual: got });
      return;
    }
    want.forEach((w, i) => {
      match(w, got[i], `${field}[${i}]`, out);
    });
    return;
  }
  if (isRecord(want)) {
    if (!isRecord(got)) {
      out.push({ field, expected: want, actual: got });
      return;
    }
    for (const [k, w] of Object.entries(want)) match(w, got[k], `${field}.${k}`, out);
    return;
  }
  if (want !== got) out.push({ field, expected: want, actual: got === undefined ? null : got });
}
