import { createHash } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import {
  clampBodySize,
  type DecisionIdentity,
  normalizeClaims,
  type PolicyDecision,
  type PolicyRequest,
  type RateLimitCharge,
} from '@apx/core';
import { CelScalar, celEnv, isCelError, mapType, parse, plan } from '@bufbuild/cel';
import type { Policy, Route, Rule } from '../model.js';
import { BUILTIN_REASONS, type BuiltinReason } from '../wasm/reasons.js';
import { routeMatches } from './match.js';

const env = celEnv({
  variables: { request: mapType(CelScalar.STRING, CelScalar.DYN), identity: mapType(CelScalar.STRING, CelScalar.DYN) },
});
type Program = (bindings: never) => unknown;

const NO_HEADERS: PolicyDecision['headers'] = { request: { set: {}, remove: [] }, response: { set: {}, remove: [] } };
const ANONYMOUS: DecisionIdentity = { kind: 'none', id: '', tenant: '', plan: '' };

interface CelIdentity {
  base: DecisionIdentity;
  scopes: readonly string[];
  roles: readonly string[];
}

/** Client address → {family, text} as node:net sees it; IPv4-mapped IPv6 counts as IPv4. */
function clientAddress(ip: string | undefined): { family: 'ipv4' | 'ipv6'; text: string } | undefined {
  if (ip === undefined) return undefined;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  const text = mapped ? (mapped[1] as string) : ip;
  const family = isIP(text);
  if (family === 4) return { family: 'ipv4', text };
  if (family === 6 && !text.includes('%')) return { family: 'ipv6', text };
  return undefined;
}

function blockList(cidrs: Policy['ip']['allow']): BlockList {
  const list = new BlockList();
  for (const c of cidrs) {
    const [addr = ''] = c.text.split('/');
    list.addSubnet(addr, c.bits, c.family === 4 ? 'ipv4' : 'ipv6');
  }
  return list;
}

/**
 * The reference semantics of apx/v1, written for clarity, not speed: it reads the same
 * validated Policy as the compiler but evaluates conditions with @bufbuild/cel's own
 * interpreter, matches addresses with node:net's BlockList and paths by splitting segments.
 * The differential tests hold the compiled module to it.
 */
export class ReferenceEvaluator {
  private readonly programs: Program[];
  private readonly allow: BlockList;
  private readonly deny: BlockList;
  private readonly keysByHash: Map<string, number>;

  constructor(private readonly policy: Policy) {
    this.programs = policy.rules.map((r) => plan(env, parse(r.when)) as Program);
    this.allow = blockList(policy.ip.allow);
    this.deny = blockList(policy.ip.deny);
    this.keysByHash = new Map((policy.apiKeys?.keys ?? []).map((k, i) => [k.sha256, i]));
  }

  decide(req: PolicyRequest): PolicyDecision {
    const p = this.policy;
    const host = req.host.toLowerCase();
    const bodySize = clampBodySize(req.bodySize);
    const deny = (r: BuiltinReason, route: Route | null = null, identity = ANONYMOUS): PolicyDecision =>
      this.result('deny', BUILTIN_REASONS[r].status, BUILTIN_REASONS[r].text, route, null, identity, req);

    if (p.maxBodyBytes !== null && bodySize > p.maxBodyBytes) return deny('bodyTooLarge');
    const addr = clientAddress(req.ip);
    if (addr && p.ip.deny.length > 0 && this.deny.check(addr.text, addr.family)) return deny('ipDenied');
    if (p.ip.allow.length > 0 && !(addr && this.allow.check(addr.text, addr.family))) return deny('ipNotAllowed');

    const route = p.routes.find((r) => routeMatches(r, host, req.method, req.path));
    if (!route) return deny('noRoute');

    let who: CelIdentity = { base: ANONYMOUS, scopes: [], roles: [] };
    if (route.auth !== 'none') {
      const presented =
        p.apiKeys && req.headers && Object.hasOwn(req.headers, p.apiKeys.header) ? req.headers[p.apiKeys.header] : undefined;
      if (p.apiKeys && presented !== undefined) {
        const index = this.keysByHash.get(createHash('sha256').update(presented, 'utf8').digest('hex'));
        const key = index === undefined ? undefined : p.apiKeys.keys[index];
        if (!key) return deny('badApiKey', route);
        who = { base: { kind: 'apiKey', id: key.id, tenant: key.tenant, plan: key.plan }, scopes: key.scopes, roles: key.roles };
      } else if (p.jwt && req.jwt) {
        if (!req.jwt.verified) return deny('badToken', route);
        const c = normalizeClaims(req.jwt.claims);
        if (c.iss !== p.jwt.issuer) return deny('badToken', route);
        const audiences = p.jwt.audiences;
        if (audiences.length > 0 && !c.aud.some((a) => audiences.includes(a))) return deny('badToken', route);
        if (!p.jwt.requiredScopes.every((s) => c.scopes.includes(s))) return deny('insufficientScope', route);
        who = { base: { kind: 'jwt', id: c.sub, tenant: c.tenant, plan: c.plan }, scopes: c.scopes, roles: c.roles };
      }
      if (route.auth === 'required' && who.base.kind === 'none') return deny('authRequired', route);
    }

    const bindings = {
      request: new Map<string, unknown>([
        ['method', req.method],
        ['host', host],
        ['path', req.path],
        ['ip', req.ip ?? ''],
        ['bodySize', BigInt(bodySize)],
        ['headers', new Map(Object.entries(req.headers ?? {}))],
      ]),
      identity: new Map<string, unknown>([
        ['authenticated', who.base.kind !== 'none'],
        ['kind', who.base.kind],
        ['id', who.base.id],
        ['tenant', who.base.tenant],
        ['plan', who.base.plan],
        ['scopes', [...who.scopes]],
        ['roles', [...who.roles]],
      ]),
    };
    for (let i = 0; i < p.rules.length; i++) {
      const rule = p.rules[i] as Rule;
      if (rule.routes.length > 0 && !rule.routes.includes(route.name)) continue;
      const value = (this.programs[i] as Program)(bindings as never);
      if (isCelError(value) || typeof value !== 'boolean') {
        const r = BUILTIN_REASONS.conditionError;
        return this.result('deny', r.status, r.text, route, rule, who.base, req);
      }
      if (value) return this.result(rule.effect, rule.status, rule.reason, route, rule, who.base, req);
    }
    const d = p.defaultEffect === 'allow' ? BUILTIN_REASONS.defaultAllow : BUILTIN_REASONS.defaultDeny;
    return this.result(p.defaultEffect, d.status, d.text, route, null, who.base, req);
  }

  private result(
    effect: 'allow' | 'deny',
    status: number,
    reason: string,
    route: Route | null,
    rule: Rule | null,
    identity: DecisionIdentity,
    req: PolicyRequest,
  ): PolicyDecision {
    const allow = effect === 'allow';
    const charges: RateLimitCharge[] = [];
    if (allow && route) {
      for (const l of this.policy.rateLimits) {
        if (l.routes.length > 0 && !l.routes.includes(route.name)) continue;
        const value = l.key === 'identity.tenant' ? identity.tenant : l.key === 'identity.id' ? identity.id : (req.ip ?? '');
        if (value === '') continue;
        charges.push({ name: l.name, key: l.key, value, limit: l.limit, windowSeconds: l.windowSeconds, burst: l.burst });
      }
    }
    return {
      effect,
      status,
      reason,
      route: route?.name ?? null,
      rule: rule?.name ?? null,
      identity,
      headers: allow ? this.policy.headers : NO_HEADERS,
      rateLimits: charges,
    };
  }
}
