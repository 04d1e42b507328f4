import {
  DATA_OFFSET,
  DECIDE_OK,
  EXPORT_DECIDE,
  IMPORT_MEMORY,
  IMPORT_MODULE,
  JwtState,
  MAX_HEADER_SLOTS,
  MAX_MEMORY_PAGES,
  META_SECTION,
  PAGE_BYTES,
  type PolicyMeta,
  type PolicyTables,
  REQUEST,
  TABLES_SECTION,
} from '@apx/core';
import { headerNames } from '../cel/ir.js';
import type { Policy } from '../model.js';
import { emitCondition } from './conditions.js';
import { DataImage } from './data.js';
import { bytesEqualAt, endsWithLiteral, equalsLiteral } from './literals.js';
import { BUILTIN_REASONS, type BuiltinReason } from './reasons.js';
import { RUNTIME_WAT } from './runtime.js';

export class LimitError extends Error {}

const AUTH_CODE = { none: 0, optional: 1, required: 2 } as const;

/** WAT string literal of UTF-8 text (custom-section payloads). */
function watString(s: string): string {
  let out = '';
  for (const b of new TextEncoder().encode(s)) {
    out += b >= 0x20 && b < 0x7f && b !== 0x22 && b !== 0x5c ? String.fromCharCode(b) : `\\${b.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/**
 * i32 expression: does the request address (16 bytes at ipBytes) start with the first `bits`
 * bits of `net`? Inline: the address as two i64 words, masked and compared with constants
 * (the validated CIDR has its host bits zero, so the masked network is the network).
 */
function prefixTest(net: Uint8Array, bits: number): string {
  const tests: string[] = [];
  for (let off = 0; off < 16; off += 8) {
    let mask = 0n;
    let value = 0n;
    for (let i = off + 7; i >= off; i--) {
      const b = Math.min(8, Math.max(0, bits - 8 * i));
      const m = (0xff << (8 - b)) & 0xff;
      mask = (mask << 8n) | BigInt(m);
      value = (value << 8n) | BigInt((net[i] as number) & m);
    }
    if (mask === 0n) continue;
    tests.push(
      `(i64.eq (i64.and (i64.load offset=${off} align=4 (i32.const ${REQUEST.ipBytes})) (i64.const ${BigInt.asIntN(64, mask)})) (i64.const ${BigInt.asIntN(64, value)}))`,
    );
  }
  return tests.length === 0 ? '(i32.const 1)' : tests.reduce((a, b) => `(i32.and ${a} ${b})`);
}

/** The decision procedure of docs/abi.md, as one WAT module. Deterministic: policy order only. */
export function emitModule(policy: Policy, meta: PolicyMeta): { wat: string; tables: PolicyTables } {
  const data = new DataImage();
  const reasons: string[] = [];
  const reasonIndex = new Map<string, number>();
  const reason = (text: string): number => {
    let i = reasonIndex.get(text);
    if (i === undefined) {
      i = reasons.length;
      reasons.push(text);
      reasonIndex.set(text, i);
    }
    return i;
  };
  const builtin = (r: BuiltinReason): number => reason(BUILTIN_REASONS[r].text);
  for (const r of Object.keys(BUILTIN_REASONS) as BuiltinReason[]) builtin(r);

  // Header slots: every header a condition reads, in first-use order.
  const slotSet = new Set<string>();
  for (const r of policy.rules) headerNames(r.condition, slotSet);
  const headerSlots = [...slotSet];
  if (headerSlots.length > MAX_HEADER_SLOTS)
    throw new LimitError(`conditions read ${headerSlots.length} headers; at most ${MAX_HEADER_SLOTS}`);
  const slotOf = (name: string): number => REQUEST.headerSlots + 8 * headerSlots.indexOf(name);

  const funcs: string[] = [];
  const lit = (s: string): string => {
    const r = data.string(s);
    return `(i32.const ${r.ptr}) (i32.const ${r.len})`;
  };
  const out = (effect: number, status: number, reasonIdx: number, route: string, rule: string): string =>
    `(return (call $out (i32.const ${effect}) (i32.const ${status}) (i32.const ${reasonIdx}) ${route} ${rule}))`;
  const deny = (r: BuiltinReason, route = '(i32.const -1)'): string =>
    out(0, BUILTIN_REASONS[r].status, builtin(r), route, '(i32.const -1)');

  // Strings known to the module for identity.kind.
  const kindNone = data.string('none');
  const kindKey = data.string('apiKey');
  const kindJwt = data.string('jwt');
  const empty = data.string('');

  // --- routes -------------------------------------------------------------------------
  const routeAuth = data.raw(policy.routes.map((r) => AUTH_CODE[r.auth]));
  policy.routes.forEach((route, i) => {
    const body: string[] = [];
    if (route.hosts.length > 0) {
      const hostP = `(i32.load (i32.const ${REQUEST.host}))`;
      const hostL = `(i32.load (i32.const ${REQUEST.host + 4}))`;
      const tests = route.hosts.map((h) => {
        if (!h.startsWith('*.')) return equalsLiteral(hostP, hostL, h);
        const suffix = h.slice(1);
        const len = new TextEncoder().encode(suffix).length;
        return `(i32.and ${endsWithLiteral(hostP, hostL, suffix)} (i32.gt_u ${hostL} (i32.const ${len})))`;
      });
      body.push(`(if (i32.eqz ${tests.reduce((a, b) => `(i32.or ${a} ${b})`)}) (then (return (i32.const 0))))`);
    }
    if (route.methods.length > 0) {
      const mP = `(i32.load (i32.const ${REQUEST.method}))`;
      const mL = `(i32.load (i32.const ${REQUEST.method + 4}))`;
      const tests = route.methods.map((x) => equalsLiteral(mP, mL, x));
      body.push(`(if (i32.eqz ${tests.reduce((a, b) => `(i32.or ${a} ${b})`)}) (then (return (i32.const 0))))`);
    }
    route.paths.forEach((pattern, j) => {
      const name = `$route${i}_path${j}`;
      const segs = pattern === '/' ? [''] : pattern.slice(1).split('/');
      const steps: string[] = ['(local.set $p (i32.const 0))'];
      let open = false;
      for (const seg of segs) {
        if (seg === '**') {
          open = true;
          break;
        }
        if (seg === '*') {
          steps.push('(local.set $p (call $seg_star (local.get $p)))');
          steps.push('(if (i32.lt_s (local.get $p) (i32.const 0)) (then (return (i32.const 0))))');
          continue;
        }
        // "/" + literal at $p, then the end of the path or another "/"; inline (see literals.ts).
        const bytes = new TextEncoder().encode(`/${seg}`);
        steps.push(
          `(local.set $e (i32.add (local.get $p) (i32.const ${bytes.length})))`,
          '(if (i32.gt_u (local.get $e) (global.get $path_l)) (then (return (i32.const 0))))',
          `(if (i32.eqz ${bytesEqualAt('(i32.add (global.get $path_p) (local.get $p))', bytes)}) (then (return (i32.const 0))))`,
          '(if (i32.lt_u (local.get $e) (global.get $path_l)) (then (if (i32.ne (i32.load8_u (i32.add (global.get $path_p) (local.get $e))) (i32.const 47)) (then (return (i32.const 0))))))',
          '(local.set $p (local.get $e))',
        );
      }
      // A trailing ** accepts whatever follows: after a segment the cursor is at the end or at
      // a "/"; for the pattern "/**" alone the path itself must start with "/".
      const startsWithSlash =
        '(i32.and (i32.ne (global.get $path_l) (i32.const 0)) (i32.eq (i32.load8_u (global.get $path_p)) (i32.const 47)))';
      steps.push(open ? (segs[0] === '**' ? startsWithSlash : '(i32.const 1)') : '(i32.eq (local.get $p) (global.get $path_l))');
      funcs.push(`(func ${name} (result i32) (local $p i32) (local $e i32)\n    ${steps.join('\n    ')})`);
      body.push(`(if (call ${name}) (then (return (i32.const 1))))`);
    });
    body.push('(i32.const 0)');
    funcs.push(`(func $route${i} (result i32)\n    ${body.join('\n    ')})`);
  });

  // --- IP lists -----------------------------------------------------------------------
  const ipList = (name: string, cidrs: Policy['ip']['allow']): void => {
    const tests = cidrs.map(
      (c) =>
        `(if (i32.and (i32.eq (local.get $fam) (i32.const ${c.family})) ${prefixTest(c.bytes, c.bits)}) (then (return (i32.const 1))))`,
    );
    funcs.push(
      `(func ${name} (result i32) (local $fam i32)\n    (local.set $fam (i32.load (i32.const ${REQUEST.ipFamily})))\n    ${tests.join('\n    ')}\n    (i32.const 0))`,
    );
  };
  ipList('$ip_deny', policy.ip.deny);
  ipList('$ip_allow', policy.ip.allow);

  // --- API keys -----------------------------------------------------------------------
  const keys = policy.apiKeys?.keys ?? [];
  const hashes = data.raw(keys.flatMap((k) => [...Buffer.from(k.sha256, 'hex')]));
  const records = data.words(
    keys.flatMap((k) => {
      const id = data.string(k.id);
      const t = data.string(k.tenant);
      const p = data.string(k.plan);
      return [id.ptr, id.len, t.ptr, t.len, p.ptr, p.len, data.list(k.scopes), data.list(k.roles)];
    }),
  );
  // The presented hash against each key's: four inline 64-bit compares, no call.
  const keyHashEquals = [0, 8, 16, 24]
    .map(
      (o) =>
        `(i64.eq (i64.load offset=${o} align=4 (i32.const ${REQUEST.apiKeySha256})) (i64.load offset=${o} align=4 (local.get $h)))`,
    )
    .reduce((a, b) => `(i32.and ${a} ${b})`);
  funcs.push(`(func $find_key (result i32) (local $i i32) (local $h i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (i32.const ${keys.length})))
        (local.set $h (i32.add (i32.const ${hashes}) (i32.shl (local.get $i) (i32.const 5))))
        (if ${keyHashEquals}
          (then (return (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const -1))`);
  funcs.push(`(func $key_identity (local $r i32)
    (local.set $r (i32.add (i32.const ${records}) (i32.shl (global.get $key) (i32.const 5))))
    (global.set $kind (i32.const 1))
    (global.set $kind_p (i32.const ${kindKey.ptr})) (global.set $kind_l (i32.const ${kindKey.len}))
    (global.set $id_p (i32.load (local.get $r))) (global.set $id_l (i32.load offset=4 (local.get $r)))
    (global.set $ten_p (i32.load offset=8 (local.get $r))) (global.set $ten_l (i32.load offset=12 (local.get $r)))
    (global.set $plan_p (i32.load offset=16 (local.get $r))) (global.set $plan_l (i32.load offset=20 (local.get $r)))
    (global.set $scopes (i32.load offset=24 (local.get $r))) (global.set $roles (i32.load offset=28 (local.get $r))))`);

  // --- decide -------------------------------------------------------------------------
  const route = '(local.get $route)';
  const d: string[] = [];
  d.push(
    `(global.set $path_p (i32.load (i32.const ${REQUEST.path}))) (global.set $path_l (i32.load (i32.const ${REQUEST.path + 4})))`,
  );
  d.push(`(global.set $kind (i32.const 0)) (global.set $key (i32.const -1))`);
  d.push(`(global.set $kind_p (i32.const ${kindNone.ptr})) (global.set $kind_l (i32.const ${kindNone.len}))`);
  for (const g of ['id', 'ten', 'plan'])
    d.push(`(global.set $${g}_p (i32.const ${empty.ptr})) (global.set $${g}_l (i32.const 0))`);
  d.push('(global.set $scopes (i32.const 0)) (global.set $roles (i32.const 0))');
  d.push('(local.set $route (i32.const -1))');
  // 1. Request limits, 2. client address: before routing, so they hold for every route.
  if (policy.maxBodyBytes !== null) {
    d.push(
      `(if (i32.gt_u (i32.load (i32.const ${REQUEST.bodySize})) (i32.const ${policy.maxBodyBytes})) (then ${deny('bodyTooLarge')}))`,
    );
  }
  if (policy.ip.deny.length > 0) d.push(`(if (call $ip_deny) (then ${deny('ipDenied')}))`);
  if (policy.ip.allow.length > 0) d.push(`(if (i32.eqz (call $ip_allow)) (then ${deny('ipNotAllowed')}))`);
  // 3. First matching route.
  d.push(
    `(block $found\n      ${policy.routes.map((_, i) => `(if (call $route${i}) (then (local.set $route (i32.const ${i})) (br $found)))`).join('\n      ')}\n      ${deny('noRoute')})`,
  );
  // 4. Authentication, as the route asks.
  const jwt = policy.jwt;
  let jwtBlock = '';
  if (jwt) {
    const st = `(i32.load (i32.const ${REQUEST.jwtState}))`;
    const checks = [
      `(if (i32.ne ${st} (i32.const ${JwtState.VERIFIED})) (then ${deny('badToken', route)}))`,
      `(if (i32.eqz ${equalsLiteral(`(i32.load (i32.const ${REQUEST.jwtIss}))`, `(i32.load (i32.const ${REQUEST.jwtIss + 4}))`, jwt.issuer)}) (then ${deny('badToken', route)}))`,
    ];
    if (jwt.audiences.length > 0) {
      checks.push(
        `(if (i32.eqz (call $lists_intersect (i32.load (i32.const ${REQUEST.jwtAud})) (i32.const ${data.list(jwt.audiences)}))) (then ${deny('badToken', route)}))`,
      );
    }
    for (const s of jwt.requiredScopes) {
      checks.push(
        `(if (i32.eqz (call $list_has (i32.load (i32.const ${REQUEST.jwtScopes})) ${lit(s)})) (then ${deny('insufficientScope', route)}))`,
      );
    }
    checks.push(
      `(global.set $kind (i32.const 2)) (global.set $kind_p (i32.const ${kindJwt.ptr})) (global.set $kind_l (i32.const ${kindJwt.len}))`,
      `(global.set $id_p (i32.load (i32.const ${REQUEST.jwtSub}))) (global.set $id_l (i32.load (i32.const ${REQUEST.jwtSub + 4})))`,
      `(global.set $ten_p (i32.load (i32.const ${REQUEST.jwtTenant}))) (global.set $ten_l (i32.load (i32.const ${REQUEST.jwtTenant + 4})))`,
      `(global.set $plan_p (i32.load (i32.const ${REQUEST.jwtPlan}))) (global.set $plan_l (i32.load (i32.const ${REQUEST.jwtPlan + 4})))`,
      `(global.set $scopes (i32.load (i32.const ${REQUEST.jwtScopes}))) (global.set $roles (i32.load (i32.const ${REQUEST.jwtRoles})))`,
    );
    jwtBlock = `(if (i32.ne ${st} (i32.const ${JwtState.ABSENT})) (then\n        ${checks.join('\n        ')}))`;
  }
  let credentials = jwtBlock;
  if (policy.apiKeys) {
    credentials = `(if (i32.load (i32.const ${REQUEST.apiKeyPresent}))
        (then
          (global.set $key (call $find_key))
          (if (i32.lt_s (global.get $key) (i32.const 0)) (then (global.set $key (i32.const -1)) ${deny('badApiKey', route)}))
          (call $key_identity))
        (else ${jwtBlock || 'nop'}))`;
  }
  d.push(`(local.set $auth (i32.load8_u (i32.add (i32.const ${routeAuth}) (local.get $route))))
    (if (local.get $auth) (then
      ${credentials || 'nop'}
      (if (i32.and (i32.eq (local.get $auth) (i32.const 2)) (i32.eqz (global.get $kind))) (then ${deny('authRequired', route)}))))`);
  // 5. Rules in order: the first whose condition is true decides; an error denies.
  const routeIndex = new Map(policy.routes.map((r, i) => [r.name, i]));
  policy.rules.forEach((rule, i) => {
    const c = emitCondition(rule.condition, data, slotOf);
    const locals = Array.from({ length: c.locals }, (_, n) => `(local $t${n} i32)`).join(' ');
    funcs.push(`(func $rule${i} (result i32) ${locals}\n    ${c.code})`);
    const effect = rule.effect === 'allow' ? 1 : 0;
    const decide = `(local.set $c (call $rule${i}))
      (if (i32.eq (local.get $c) (i32.const 2)) (then ${out(0, BUILTIN_REASONS.conditionError.status, builtin('conditionError'), route, `(i32.const ${i})`)}))
      (if (i32.eq (local.get $c) (i32.const 1)) (then ${out(effect, rule.status, reason(rule.reason), route, `(i32.const ${i})`)}))`;
    if (rule.routes.length === 0) d.push(decide);
    else {
      const on = rule.routes
        .map((n) => `(i32.eq (local.get $route) (i32.const ${routeIndex.get(n) ?? -1}))`)
        .reduce((a, b) => `(i32.or ${a} ${b})`);
      d.push(`(if ${on} (then\n      ${decide}))`);
    }
  });
  // 6. The default effect.
  const def = policy.defaultEffect === 'allow' ? 'defaultAllow' : 'defaultDeny';
  d.push(out(policy.defaultEffect === 'allow' ? 1 : 0, BUILTIN_REASONS[def].status, builtin(def), route, '(i32.const -1)'));

  funcs.push(
    `(func $decide (result i32) (local $route i32) (local $auth i32) (local $c i32)\n    ${d.join('\n    ')}\n    (i32.const ${DECIDE_OK}))`,
  );

  const pages = 1 + Math.ceil(data.size / PAGE_BYTES);
  if (pages > MAX_MEMORY_PAGES)
    throw new LimitError(`static data of ${data.size} bytes exceeds the ABI's ${MAX_MEMORY_PAGES} pages`);
  const tables: PolicyTables = {
    reasons,
    routes: policy.routes.map((r) => ({ name: r.name })),
    rules: policy.rules.map((r) => ({ name: r.name })),
    apiKeys: keys.map((k) => ({ id: k.id, tenant: k.tenant, plan: k.plan })),
    apiKeyHeader: policy.apiKeys?.header ?? null,
    jwt: policy.jwt && { issuer: policy.jwt.issuer, jwksUri: policy.jwt.jwksUri, audiences: policy.jwt.audiences },
    headerSlots,
    headers: policy.headers,
    rateLimits: policy.rateLimits.map((l) => ({
      name: l.name,
      key: l.key,
      limit: l.limit,
      windowSeconds: l.windowSeconds,
      burst: l.burst,
      routes: l.routes.map((n) => routeIndex.get(n) ?? -1),
    })),
    memoryPages: pages,
  };
  const wat = `(module
  (@custom "${META_SECTION}" "${watString(JSON.stringify(meta))}")
  (@custom "${TABLES_SECTION}" "${watString(JSON.stringify(tables))}")
  (import "${IMPORT_MODULE}" "${IMPORT_MEMORY}" (memory ${pages} ${pages}))
${RUNTIME_WAT}
  ${funcs.join('\n  ')}
  (export "${EXPORT_DECIDE}" (func $decide))
  (data (i32.const ${DATA_OFFSET}) "${data.watLiteral()}"))
`;
  return { wat, tables };
}
