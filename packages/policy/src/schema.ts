import { type HeaderMutations, parseIp, type RateLimitKey } from '@apx/core';
import { checkCondition } from './cel/check.js';
import { PolicyErrorCode, type Problem } from './error.js';
import type { ApiKey, ApiKeyAuth, Cidr, Effect, JwtAuth, Policy, RateLimit, Route, RouteAuth, Rule } from './model.js';
import { Collector, int, list, obj, oneOf, str, strings, uniqueNames } from './schema-kit.js';
import type { ParsedSource, PathSegment } from './source.js';

export const API_VERSION = 'apx/v1';
export const KIND = 'PolicyBundle';

/** Bounds that keep every compiled module far below the ABI's memory cap. */
export const LIMITS = { routes: 256, patterns: 64, rules: 1024, apiKeys: 4096, cidrs: 1024, rateLimits: 64, names: 64 };

const NAME = { pattern: /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, expect: 'lowercase letters, digits and -, at most 63' };
const SEMVER = {
  pattern: /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$/,
  expect: 'a semantic version such as 1.0.0',
};
const HEADER = { pattern: /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, expect: 'an HTTP header name' };
const HOST = { pattern: /^(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/, expect: 'a host name, optionally *.domain' };
const METHOD = { pattern: /^[A-Z]+$/, expect: 'an uppercase HTTP method such as GET' };
const SHA256 = { pattern: /^[0-9a-fA-F]{64}$/, expect: '64 hex digits (SHA-256 of the key)' };
const PLAIN = { pattern: /^\P{Cc}{1,256}$/u, expect: '1 to 256 printable characters' };
const WINDOW = /^([1-9]\d{0,5})(s|m|h|d)$/;
const WINDOW_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };
const RATE_KEYS: readonly RateLimitKey[] = ['identity.tenant', 'identity.id', 'request.ip'];

/** Path patterns: `/`, or `/seg/...` where a segment is a literal, `*`, or a final `**`. */
function checkPathPattern(p: string): string | undefined {
  if (p === '/') return undefined;
  if (!p.startsWith('/')) return 'must start with /';
  const segs = p.slice(1).split('/');
  for (let i = 0; i < segs.length; i++) {
    const s = segs[i] as string;
    if (s === '') return 'empty segment';
    if (s === '**' && i !== segs.length - 1) return '** is only allowed as the last segment';
    if (s !== '*' && s !== '**' && s.includes('*')) return '* must be a whole segment';
    if (/[?#\s]/.test(s)) return 'no query, fragment or whitespace';
  }
  return undefined;
}

function parseCidr(c: Collector, text: string, path: PathSegment[]): Cidr | undefined {
  const [addr = '', bitsText, extra] = text.split('/');
  const ip = parseIp(addr);
  if (!ip || extra !== undefined || (ip.family === 4 && addr.includes(':'))) {
    c.add(PolicyErrorCode.SCHEMA_VALUE, path, `invalid CIDR '${text}': expected an IPv4 or IPv6 address with optional /bits`);
    return undefined;
  }
  const max = ip.family === 4 ? 32 : 128;
  const bits = bitsText === undefined ? max : /^\d{1,3}$/.test(bitsText) ? Number(bitsText) : -1;
  if (bits < 0 || bits > max) {
    c.add(PolicyErrorCode.SCHEMA_VALUE, path, `invalid CIDR '${text}': prefix length must be 0..${max}`);
    return undefined;
  }
  const masked = new Uint8Array(16);
  for (let i = 0; i < 16; i++) {
    const keep = Math.max(0, Math.min(8, bits - 8 * i));
    masked[i] = (ip.bytes[i] as number) & ((0xff << (8 - keep)) & 0xff);
  }
  if (!masked.every((b, i) => b === ip.bytes[i])) {
    c.add(PolicyErrorCode.SCHEMA_VALUE, path, `invalid CIDR '${text}': host bits are set`);
    return undefined;
  }
  return { text, family: ip.family, bytes: masked, bits };
}

function mutations(c: Collector, v: unknown, path: PathSegment[]): HeaderMutations {
  if (v === undefined) return { set: {}, remove: [] };
  const m = obj(c, v, path, { set: 'optional', remove: 'optional' });
  const set: Record<string, string> = {};
  if (m?.set !== undefined) {
    if (typeof m.set !== 'object' || m.set === null || Array.isArray(m.set)) {
      c.add(PolicyErrorCode.SCHEMA_TYPE, [...path, 'set'], 'expected a mapping of header name to value');
    } else {
      for (const [name, value] of Object.entries(m.set)) {
        if (str(c, name, [...path, 'set', name], HEADER) === undefined) continue;
        const val = str(c, value, [...path, 'set', name], {
          pattern: /^[^\r\n\0]*$/,
          expect: 'a header value without line breaks',
        });
        if (val !== undefined) set[name] = val;
      }
    }
  }
  const remove = strings(c, m?.remove, [...path, 'remove'], 64, HEADER);
  for (const name of remove) {
    if (Object.keys(set).some((k) => k.toLowerCase() === name.toLowerCase())) {
      c.add(PolicyErrorCode.SCHEMA_VALUE, [...path, 'remove'], `header '${name}' is both set and removed`);
    }
  }
  return { set, remove };
}

function route(c: Collector, v: unknown, path: PathSegment[], defaultAuth: RouteAuth): Route | undefined {
  const r = obj(c, v, path, { name: 'required', match: 'required', auth: 'optional' });
  if (!r) return undefined;
  const name = str(c, r.name, [...path, 'name'], NAME);
  const m = obj(c, r.match, [...path, 'match'], { hosts: 'optional', paths: 'required', methods: 'optional' });
  const hosts = strings(c, m?.hosts, [...path, 'match', 'hosts'], LIMITS.patterns, HOST).map((h) => h.toLowerCase());
  const paths = strings(c, m?.paths, [...path, 'match', 'paths'], LIMITS.patterns);
  paths.forEach((p, i) => {
    const why = checkPathPattern(p);
    if (why) c.add(PolicyErrorCode.SCHEMA_VALUE, [...path, 'match', 'paths', i], `invalid path pattern '${p}': ${why}`);
  });
  if (m?.paths !== undefined && paths.length === 0)
    c.add(PolicyErrorCode.SCHEMA_VALUE, [...path, 'match', 'paths'], 'at least one path');
  const methods = strings(c, m?.methods, [...path, 'match', 'methods'], 16, METHOD);
  const auth =
    r.auth === undefined ? defaultAuth : oneOf(c, r.auth, [...path, 'auth'], ['required', 'optional', 'none'] as const);
  if (name === undefined || auth === undefined) return undefined;
  return { name, hosts, paths, methods, auth };
}

function apiKeys(c: Collector, v: unknown, path: PathSegment[]): ApiKeyAuth | null {
  const a = obj(c, v, path, { header: 'optional', keys: 'required' });
  if (!a) return null;
  const header =
    a.header === undefined ? 'x-api-key' : (str(c, a.header, [...path, 'header'], HEADER)?.toLowerCase() ?? 'x-api-key');
  const keys: ApiKey[] = [];
  (list(c, a.keys, [...path, 'keys'], LIMITS.apiKeys) ?? []).forEach((item, i) => {
    const p = [...path, 'keys', i];
    const k = obj(c, item, p, {
      id: 'required',
      sha256: 'required',
      tenant: 'required',
      plan: 'required',
      scopes: 'optional',
      roles: 'optional',
    });
    if (!k) return;
    const id = str(c, k.id, [...p, 'id'], NAME);
    const sha256 = str(c, k.sha256, [...p, 'sha256'], SHA256)?.toLowerCase();
    const tenant = str(c, k.tenant, [...p, 'tenant'], PLAIN);
    const plan = str(c, k.plan, [...p, 'plan'], PLAIN);
    const scopes = strings(c, k.scopes, [...p, 'scopes'], 64, PLAIN);
    const roles = strings(c, k.roles, [...p, 'roles'], 64, PLAIN);
    if (id && sha256 && tenant && plan) keys.push({ id, sha256, tenant, plan, scopes, roles });
  });
  uniqueNames(
    c,
    keys.map((k, i) => ({ name: k.id, path: [...path, 'keys', i, 'id'] })),
    'API key',
  );
  const seen = new Set<string>();
  keys.forEach((k, i) => {
    if (seen.has(k.sha256))
      c.add(PolicyErrorCode.DUPLICATE_NAME, [...path, 'keys', i, 'sha256'], 'the same key hash appears twice');
    seen.add(k.sha256);
  });
  return { header, keys };
}

function jwt(c: Collector, v: unknown, path: PathSegment[]): JwtAuth | null {
  const j = obj(c, v, path, { issuer: 'required', audiences: 'optional', jwksUri: 'required', requiredScopes: 'optional' });
  if (!j) return null;
  const issuer = str(c, j.issuer, [...path, 'issuer'], PLAIN);
  const jwksUri = str(c, j.jwksUri, [...path, 'jwksUri'], { pattern: /^https:\/\/\S+$/, expect: 'an https:// URL' });
  const audiences = strings(c, j.audiences, [...path, 'audiences'], 16, PLAIN);
  const requiredScopes = strings(c, j.requiredScopes, [...path, 'requiredScopes'], 32, PLAIN);
  if (!issuer || !jwksUri) return null;
  return { issuer, jwksUri, audiences, requiredScopes };
}

function rule(c: Collector, v: unknown, path: PathSegment[]): Rule | undefined {
  const r = obj(c, v, path, {
    name: 'required',
    when: 'required',
    effect: 'required',
    status: 'optional',
    reason: 'optional',
    routes: 'optional',
  });
  if (!r) return undefined;
  const name = str(c, r.name, [...path, 'name'], NAME);
  const when = str(c, r.when, [...path, 'when']);
  const effect = oneOf(c, r.effect, [...path, 'effect'], ['allow', 'deny'] as const);
  const [lo, hi] = effect === 'allow' ? [200, 299] : [400, 599];
  const status = r.status === undefined ? (effect === 'allow' ? 200 : 403) : int(c, r.status, [...path, 'status'], lo, hi);
  const reason =
    r.reason === undefined
      ? `${effect === 'allow' ? 'allowed' : 'denied'} by rule ${name ?? ''}`
      : str(c, r.reason, [...path, 'reason'], PLAIN);
  const routes = strings(c, r.routes, [...path, 'routes'], LIMITS.routes, NAME);
  let condition: Rule['condition'] | undefined;
  if (when !== undefined) {
    const checked = checkCondition(when);
    if ('problem' in checked)
      c.addInside(
        PolicyErrorCode[checked.problem.code],
        [...path, 'when'],
        checked.problem.message,
        when,
        checked.problem.offset,
      );
    else condition = checked.ir;
  }
  if (!name || when === undefined || !effect || status === undefined || reason === undefined || !condition) return undefined;
  return { name, when, condition, routes, effect, status, reason };
}

function rateLimit(c: Collector, v: unknown, path: PathSegment[]): RateLimit | undefined {
  const r = obj(c, v, path, {
    name: 'required',
    key: 'required',
    rps: 'optional',
    limit: 'optional',
    window: 'optional',
    burst: 'optional',
    routes: 'optional',
  });
  if (!r) return undefined;
  const name = str(c, r.name, [...path, 'name'], NAME);
  const key = oneOf(c, r.key, [...path, 'key'], RATE_KEYS);
  let limit: number | undefined;
  let windowSeconds: number | undefined;
  if (r.rps !== undefined) {
    if (r.limit !== undefined || r.window !== undefined)
      c.add(PolicyErrorCode.SCHEMA_VALUE, path, 'give either rps or limit and window, not both');
    limit = int(c, r.rps, [...path, 'rps'], 1, 1_000_000_000);
    windowSeconds = 1;
  } else if (r.limit === undefined || r.window === undefined) {
    c.add(PolicyErrorCode.SCHEMA_MISSING_FIELD, path, "missing 'rps', or 'limit' and 'window'");
  } else {
    limit = int(c, r.limit, [...path, 'limit'], 1, 1_000_000_000);
    const w = str(c, r.window, [...path, 'window'], { pattern: WINDOW, expect: 'a window such as 1s, 1m, 1h or 1d' });
    const m = w === undefined ? null : WINDOW.exec(w);
    if (m) windowSeconds = Number(m[1]) * (WINDOW_SECONDS[m[2] as string] as number);
  }
  const burst = r.burst === undefined ? limit : int(c, r.burst, [...path, 'burst'], limit ?? 1, 1_000_000_000);
  const routes = strings(c, r.routes, [...path, 'routes'], LIMITS.routes, NAME);
  if (!name || !key || limit === undefined || windowSeconds === undefined || burst === undefined) return undefined;
  return { name, key, limit, windowSeconds, burst, routes };
}

function cidrs(c: Collector, v: unknown, path: PathSegment[]): Cidr[] {
  const out: Cidr[] = [];
  strings(c, v, path, LIMITS.cidrs).forEach((text, i) => {
    const cidr = parseCidr(c, text, [...path, i]);
    if (cidr) out.push(cidr);
  });
  return out;
}

function checkRefs(c: Collector, names: Set<string>, refs: string[], path: PathSegment[]): void {
  refs.forEach((r, i) => {
    if (!names.has(r)) c.add(PolicyErrorCode.UNKNOWN_REFERENCE, [...path, i], `unknown route '${r}'`);
  });
}

/** Validates a parsed YAML value as an apx/v1 PolicyBundle; reports every problem at once. */
export function validatePolicy(source: ParsedSource, text: string): { policy: Policy } | { problems: Problem[] } {
  const c = new Collector(source, text);
  const doc = obj(c, source.value, [], { apiVersion: 'required', kind: 'required', metadata: 'required', spec: 'required' });
  if (!doc) return { problems: c.problems };
  if (doc.apiVersion !== undefined && doc.apiVersion !== API_VERSION) {
    c.add(
      PolicyErrorCode.SCHEMA_VALUE,
      ['apiVersion'],
      `unsupported apiVersion '${String(doc.apiVersion)}': expected ${API_VERSION}`,
    );
  }
  if (doc.kind !== undefined && doc.kind !== KIND)
    c.add(PolicyErrorCode.SCHEMA_VALUE, ['kind'], `unsupported kind '${String(doc.kind)}': expected ${KIND}`);
  const md =
    obj(c, doc.metadata, ['metadata'], { name: 'required', version: 'required', compat: 'optional', description: 'optional' }) ??
    {};
  const name = md.name === undefined ? undefined : str(c, md.name, ['metadata', 'name'], NAME);
  const version = md.version === undefined ? undefined : str(c, md.version, ['metadata', 'version'], SEMVER);
  const compat =
    md.compat === undefined
      ? 'none'
      : oneOf(c, md.compat, ['metadata', 'compat'], ['backward', 'forward', 'full', 'none'] as const);
  const description = md.description === undefined ? '' : str(c, md.description, ['metadata', 'description']);

  const spec =
    obj(c, doc.spec, ['spec'], {
      routes: 'required',
      auth: 'optional',
      ip: 'optional',
      rules: 'optional',
      rateLimits: 'optional',
      limits: 'optional',
      headers: 'optional',
      default: 'optional',
    }) ?? {};
  const auth =
    spec.auth === undefined ? {} : (obj(c, spec.auth, ['spec', 'auth'], { apiKeys: 'optional', jwt: 'optional' }) ?? {});
  const keys = auth.apiKeys === undefined ? null : apiKeys(c, auth.apiKeys, ['spec', 'auth', 'apiKeys']);
  const jwtAuth = auth.jwt === undefined ? null : jwt(c, auth.jwt, ['spec', 'auth', 'jwt']);
  const defaultAuth: RouteAuth = auth.apiKeys !== undefined || auth.jwt !== undefined ? 'required' : 'none';

  const routes: Route[] = [];
  (spec.routes === undefined ? [] : (list(c, spec.routes, ['spec', 'routes'], LIMITS.routes) ?? [])).forEach((r, i) => {
    const parsed = route(c, r, ['spec', 'routes', i], defaultAuth);
    if (parsed) routes.push(parsed);
  });
  if (Array.isArray(spec.routes) && spec.routes.length === 0)
    c.add(PolicyErrorCode.SCHEMA_VALUE, ['spec', 'routes'], 'at least one route');
  const routeNames = new Set(routes.map((r) => r.name));
  if (defaultAuth === 'none') {
    routes.forEach((r, i) => {
      if (r.auth !== 'none') {
        c.add(
          PolicyErrorCode.SCHEMA_VALUE,
          ['spec', 'routes', i, 'auth'],
          `auth: ${r.auth} needs spec.auth.apiKeys or spec.auth.jwt`,
        );
      }
    });
  }

  const ipSpec = spec.ip === undefined ? {} : (obj(c, spec.ip, ['spec', 'ip'], { allow: 'optional', deny: 'optional' }) ?? {});
  const ip = { allow: cidrs(c, ipSpec.allow, ['spec', 'ip', 'allow']), deny: cidrs(c, ipSpec.deny, ['spec', 'ip', 'deny']) };

  const rules: Rule[] = [];
  (spec.rules === undefined ? [] : (list(c, spec.rules, ['spec', 'rules'], LIMITS.rules) ?? [])).forEach((r, i) => {
    const parsed = rule(c, r, ['spec', 'rules', i]);
    if (parsed) rules.push(parsed);
    // References are checked even when the rule has other problems: report everything at once.
    const refs = (r as { routes?: unknown } | null)?.routes;
    if (Array.isArray(refs))
      checkRefs(
        c,
        routeNames,
        refs.filter((x): x is string => typeof x === 'string'),
        ['spec', 'rules', i, 'routes'],
      );
  });
  const rateLimits: RateLimit[] = [];
  (spec.rateLimits === undefined ? [] : (list(c, spec.rateLimits, ['spec', 'rateLimits'], LIMITS.rateLimits) ?? [])).forEach(
    (r, i) => {
      const parsed = rateLimit(c, r, ['spec', 'rateLimits', i]);
      if (parsed) {
        rateLimits.push(parsed);
        checkRefs(c, routeNames, parsed.routes, ['spec', 'rateLimits', i, 'routes']);
      }
    },
  );
  const limits = spec.limits === undefined ? {} : (obj(c, spec.limits, ['spec', 'limits'], { maxBodyBytes: 'optional' }) ?? {});
  const maxBodyBytes =
    limits.maxBodyBytes === undefined
      ? null
      : (int(c, limits.maxBodyBytes, ['spec', 'limits', 'maxBodyBytes'], 0, 0xfffffffe) ?? null);
  const h =
    spec.headers === undefined
      ? {}
      : (obj(c, spec.headers, ['spec', 'headers'], { request: 'optional', response: 'optional' }) ?? {});
  const headers = {
    request: mutations(c, h.request, ['spec', 'headers', 'request']),
    response: mutations(c, h.response, ['spec', 'headers', 'response']),
  };
  const defaultEffect: Effect | undefined =
    spec.default === undefined ? 'deny' : oneOf(c, spec.default, ['spec', 'default'], ['allow', 'deny'] as const);

  uniqueNames(
    c,
    routes.map((r, i) => ({ name: r.name, path: ['spec', 'routes', i, 'name'] })),
    'route',
  );
  uniqueNames(
    c,
    rules.map((r, i) => ({ name: r.name, path: ['spec', 'rules', i, 'name'] })),
    'rule',
  );
  uniqueNames(
    c,
    rateLimits.map((r, i) => ({ name: r.name, path: ['spec', 'rateLimits', i, 'name'] })),
    'rate limit',
  );

  if (c.problems.length > 0 || !name || !version || !compat || description === undefined || !defaultEffect) {
    return {
      problems:
        c.problems.length > 0
          ? c.problems
          : [{ code: PolicyErrorCode.SCHEMA_MISSING_FIELD, path: '', message: 'incomplete policy', line: 1, column: 1 }],
    };
  }
  return {
    policy: {
      name,
      version,
      compat,
      description,
      routes,
      apiKeys: keys,
      jwt: jwtAuth,
      ip,
      rules,
      rateLimits,
      maxBodyBytes,
      headers,
      defaultEffect,
    },
  };
}

/**
 * The value patterns the validator applies, for the published JSON Schema (json-schema.ts),
 * so that editors check the same shapes as the compiler.
 */
export const VALUE_PATTERNS = {
  name: NAME,
  semver: SEMVER,
  header: HEADER,
  host: HOST,
  method: METHOD,
  sha256: SHA256,
  plain: PLAIN,
  window: { pattern: WINDOW, expect: 'a window such as 1s, 1m, 1h or 1d' },
} as const;
export const RATE_LIMIT_KEYS = RATE_KEYS;
