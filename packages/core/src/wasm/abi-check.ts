import { CoreErrorCode, VerificationError } from '../error.js';
import {
  ABI_VERSION,
  DATA_OFFSET,
  EXPORT_DECIDE,
  IMPORT_MEMORY,
  IMPORT_MODULE,
  MAX_HEADER_SLOTS,
  MAX_MEMORY_PAGES,
  META_SECTION,
  METER_MODULE,
  METER_REFUEL,
  PAGE_BYTES,
  type PolicyMeta,
  type PolicyTables,
  TABLES_SECTION,
} from './abi.js';

export function abiMismatch(detail: string): VerificationError {
  return new VerificationError(CoreErrorCode.ARTIFACT_ABI_MISMATCH, `invalid artifact: policy ABI mismatch: ${detail}`, {
    hint: `the worker runs policy ABI v${ABI_VERSION}; recompile the policy with a matching apx compile`,
  });
}

function readJsonSection(module: WebAssembly.Module, name: string): unknown {
  const sections = WebAssembly.Module.customSections(module, name);
  if (sections.length !== 1) throw abiMismatch(`expected one "${name}" custom section, found ${sections.length}`);
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(sections[0] as ArrayBuffer));
  } catch {
    throw abiMismatch(`"${name}" custom section is not UTF-8 JSON`);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');

/** Reads `apx.meta` without any other check: for inspecting an artifact, never for running it. */
export function readPolicyMeta(module: WebAssembly.Module): PolicyMeta {
  const meta = readJsonSection(module, META_SECTION);
  if (
    !isObject(meta) ||
    typeof meta.policy !== 'string' ||
    typeof meta.version !== 'string' ||
    typeof meta.abi !== 'number' ||
    typeof meta.compiler !== 'string' ||
    typeof meta.sourceSha256 !== 'string'
  ) {
    throw abiMismatch(`"${META_SECTION}" lacks policy, version, abi, compiler or sourceSha256`);
  }
  return {
    policy: meta.policy,
    version: meta.version,
    abi: meta.abi,
    compiler: meta.compiler,
    sourceSha256: meta.sourceSha256,
  };
}

function checkTables(raw: unknown): PolicyTables {
  // The tables come from a verified artifact; these checks keep a compiler bug from
  // turning into an out-of-bounds read in the host, they are not a trust boundary.
  if (!isObject(raw)) throw abiMismatch('tables are not an object');
  const t = raw as unknown as PolicyTables;
  const pages = t.memoryPages;
  if (!Number.isInteger(pages) || pages < DATA_OFFSET / PAGE_BYTES || pages > MAX_MEMORY_PAGES) {
    throw abiMismatch(`memory of ${String(pages)} pages outside 1..${MAX_MEMORY_PAGES}`);
  }
  if (!isStringArray(t.reasons) || t.reasons.length === 0) throw abiMismatch('reasons table missing');
  if (!Array.isArray(t.routes) || !Array.isArray(t.rules) || !Array.isArray(t.apiKeys) || !Array.isArray(t.rateLimits)) {
    throw abiMismatch('routes, rules, apiKeys or rateLimits table missing');
  }
  if (!isStringArray(t.headerSlots) || t.headerSlots.length > MAX_HEADER_SLOTS) {
    throw abiMismatch(`header slots missing or more than ${MAX_HEADER_SLOTS}`);
  }
  const jwtOk =
    t.jwt === null ||
    (isObject(t.jwt) && typeof t.jwt.issuer === 'string' && typeof t.jwt.jwksUri === 'string' && isStringArray(t.jwt.audiences));
  if (!(t.apiKeyHeader === null || typeof t.apiKeyHeader === 'string') || !jwtOk) {
    throw abiMismatch('apiKeyHeader or jwt table missing');
  }
  const named = (x: unknown) => isObject(x) && typeof x.name === 'string';
  if (!t.routes.every(named) || !t.rules.every(named)) throw abiMismatch('routes and rules need names');
  if (!t.apiKeys.every((k) => isObject(k) && ['id', 'tenant', 'plan'].every((f) => typeof k[f] === 'string'))) {
    throw abiMismatch('API keys need id, tenant and plan');
  }
  const limitOk = (l: unknown) =>
    isObject(l) &&
    typeof l.name === 'string' &&
    (l.key === 'identity.tenant' || l.key === 'identity.id' || l.key === 'request.ip') &&
    ['limit', 'windowSeconds', 'burst'].every((f) => Number.isInteger(l[f])) &&
    Array.isArray(l.routes) &&
    l.routes.every((r) => Number.isInteger(r));
  if (!t.rateLimits.every(limitOk)) throw abiMismatch('malformed rate limit');
  const mutationsOk = (m: unknown) =>
    isObject(m) && isObject(m.set) && Object.values(m.set).every((v) => typeof v === 'string') && isStringArray(m.remove);
  if (!isObject(t.headers) || !mutationsOk(t.headers.request) || !mutationsOk(t.headers.response)) {
    throw abiMismatch('header mutations missing');
  }
  return t;
}

/**
 * The ABI check of DESIGN.md §1 ("validate, ABI check"), run on a verified module before it
 * is instantiated: exactly the one memory import and the one `decide` export of ABI v1,
 * metadata for this ABI version, and a memory size within the cap. Anything else is refused
 * so that no artifact can reach host functions or memory it was not designed for.
 */
export function checkAbi(module: WebAssembly.Module): { meta: PolicyMeta; tables: PolicyTables } {
  // The policy's own imports; the host's refuel import, last, is there once the verifier
  // metered the module (meter.ts), and is the only import the ABI check does not count.
  const all = WebAssembly.Module.imports(module);
  const last = all[all.length - 1];
  const metered = last?.module === METER_MODULE && last.name === METER_REFUEL && last.kind === 'function';
  const imports = metered ? all.slice(0, -1) : all;
  const imp = imports[0];
  if (imports.length !== 1 || !imp || imp.module !== IMPORT_MODULE || imp.name !== IMPORT_MEMORY || imp.kind !== 'memory') {
    const list = imports.map((i) => `${i.module}.${i.name} (${i.kind})`).join(', ') || 'none';
    throw abiMismatch(`imports must be exactly ${IMPORT_MODULE}.${IMPORT_MEMORY} (memory), found ${list}`);
  }
  const exports = WebAssembly.Module.exports(module);
  const exp = exports[0];
  if (exports.length !== 1 || !exp || exp.name !== EXPORT_DECIDE || exp.kind !== 'function') {
    const list = exports.map((e) => `${e.name} (${e.kind})`).join(', ') || 'none';
    throw abiMismatch(`exports must be exactly ${EXPORT_DECIDE} (function), found ${list}`);
  }
  const meta = readPolicyMeta(module);
  if (meta.abi !== ABI_VERSION) throw abiMismatch(`artifact is ABI v${meta.abi}, this host runs v${ABI_VERSION}`);
  return { meta, tables: checkTables(readJsonSection(module, TABLES_SECTION)) };
}
