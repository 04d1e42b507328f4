import { didYouMean } from '../suggest.js';
import type {
  CompareOp,
  CondExpr,
  IdentityStringField,
  IntExpr,
  ListField,
  RequestStringField,
  StrExpr,
  StringOp,
} from './ir.js';
import { parseCel } from './parser.js';

type Parsed = ReturnType<typeof parseCel>;
type Expr = Parsed['expr'];

export interface CelProblem {
  code: 'CEL_SYNTAX' | 'CEL_UNKNOWN_IDENTIFIER' | 'CEL_TYPE' | 'CEL_UNSUPPORTED';
  message: string;
  /** 0-based character offset in the expression. */
  offset: number;
}

type Typed =
  | { t: 'bool'; e: CondExpr }
  | { t: 'string'; e: StrExpr }
  | { t: 'int'; e: IntExpr }
  | { t: 'list'; e: ListField }
  | { t: 'headers' }
  | { t: 'request' }
  | { t: 'identity' };

const REQUEST_FIELDS: Record<string, Typed> = {
  method: { t: 'string', e: { k: 'request', field: 'method' } },
  host: { t: 'string', e: { k: 'request', field: 'host' } },
  path: { t: 'string', e: { k: 'request', field: 'path' } },
  ip: { t: 'string', e: { k: 'request', field: 'ip' } },
  bodySize: { t: 'int', e: { k: 'bodySize' } },
  headers: { t: 'headers' },
};
const IDENTITY_FIELDS: Record<string, Typed> = {
  authenticated: { t: 'bool', e: { k: 'authenticated' } },
  kind: { t: 'string', e: { k: 'identity', field: 'kind' } },
  id: { t: 'string', e: { k: 'identity', field: 'id' } },
  tenant: { t: 'string', e: { k: 'identity', field: 'tenant' } },
  plan: { t: 'string', e: { k: 'identity', field: 'plan' } },
  scopes: { t: 'list', e: 'scopes' },
  roles: { t: 'list', e: 'roles' },
};
export const REQUEST_FIELD_NAMES = Object.keys(REQUEST_FIELDS);
export const IDENTITY_FIELD_NAMES = Object.keys(IDENTITY_FIELDS);
// Keep the literal unions honest at compile time.
const _fields: [RequestStringField, IdentityStringField] = ['method', 'kind'];
void _fields;

const COMPARE: Record<string, CompareOp> = {
  '_==_': '==',
  '_!=_': '!=',
  '_<_': '<',
  '_<=_': '<=',
  '_>_': '>',
  '_>=_': '>=',
};
const STRING_OPS: readonly string[] = ['startsWith', 'endsWith', 'contains'];

class Fail extends Error {
  constructor(readonly problem: CelProblem) {
    super(problem.message);
  }
}

const typeName = (x: Typed): string =>
  x.t === 'list'
    ? 'list(string)'
    : x.t === 'headers'
      ? 'map(string, string)'
      : x.t === 'request' || x.t === 'identity'
        ? x.t
        : x.t;

/**
 * Parses a condition with @bufbuild/cel and type-checks it against apx/v1's `request` and
 * `identity`, producing the IR the compiler emits. Anything outside the documented subset
 * is a problem at its position, so nothing unsupported can reach run time.
 */
export function checkCondition(source: string): { ir: CondExpr } | { problem: CelProblem } {
  let parsed: Parsed;
  try {
    parsed = parseCel(source);
  } catch (err) {
    const e = err as { location?: { start?: { offset?: number } }; rawMessage?: string; message: string };
    const offset = e.location?.start?.offset ?? 0;
    const message = (e.rawMessage ?? e.message).replace(/^<input>:\d+:\d+: /, '');
    return { problem: { code: 'CEL_SYNTAX', message: `syntax error: ${message}`, offset } };
  }
  const positions = parsed.sourceInfo?.positions ?? {};
  const at = (x: Expr): number => positions[x.id.toString() as unknown as number] ?? 0;
  const fail = (x: Expr, code: CelProblem['code'], message: string): never => {
    throw new Fail({ code, message, offset: at(x) });
  };

  const visit = (x: Expr): Typed => {
    const kind = x.exprKind;
    switch (kind.case) {
      case 'constExpr': {
        const c = kind.value.constantKind;
        if (c.case === 'stringValue') return { t: 'string', e: { k: 'lit', value: c.value } };
        if (c.case === 'int64Value') return { t: 'int', e: { k: 'lit', value: c.value } };
        if (c.case === 'boolValue') return { t: 'bool', e: { k: 'bool', value: c.value } };
        return fail(x, 'CEL_UNSUPPORTED', `${c.case ?? 'this'} literals are not supported (strings, ints and bools are)`);
      }
      case 'identExpr': {
        const name = kind.value.name;
        if (name === 'request') return { t: 'request' };
        if (name === 'identity') return { t: 'identity' };
        return fail(x, 'CEL_UNKNOWN_IDENTIFIER', `unknown identifier '${name}'${didYouMean(name, ['request', 'identity'])}`);
      }
      case 'selectExpr': {
        const { operand, field, testOnly } = kind.value;
        if (testOnly) return fail(x, 'CEL_UNSUPPORTED', "has() is not supported; use 'name' in request.headers");
        if (!operand) return fail(x, 'CEL_SYNTAX', 'missing operand');
        const base = visit(operand);
        const table = base.t === 'request' ? REQUEST_FIELDS : base.t === 'identity' ? IDENTITY_FIELDS : undefined;
        if (!table) {
          const hint = base.t === 'headers' ? `; use request.headers["${field}"]` : '';
          return fail(x, 'CEL_UNSUPPORTED', `field selection on ${typeName(base)} is not supported${hint}`);
        }
        const found = table[field];
        if (!found) {
          // The parser positions a selection at its dot; point at the field name instead.
          throw new Fail({
            code: 'CEL_UNKNOWN_IDENTIFIER',
            message: `unknown field '${field}' of ${base.t}${didYouMean(field, Object.keys(table))}`,
            offset: at(x) + 1,
          });
        }
        return found;
      }
      case 'callExpr':
        return call(x, kind.value);
      case 'listExpr':
        return fail(x, 'CEL_UNSUPPORTED', 'list literals are only supported on the right of `in`');
      default:
        return fail(x, 'CEL_UNSUPPORTED', `${kind.case ?? 'this'} expressions are not supported`);
    }
  };

  const bool = (x: Expr): CondExpr => {
    const v = visit(x);
    if (v.t !== 'bool') return fail(x, 'CEL_TYPE', `expected bool, found ${typeName(v)}`);
    return v.e;
  };
  const str = (x: Expr): StrExpr => {
    const v = visit(x);
    if (v.t !== 'string') return fail(x, 'CEL_TYPE', `expected string, found ${typeName(v)}`);
    return v.e;
  };
  const literalList = (x: Expr): Expr[] | undefined => (x.exprKind.case === 'listExpr' ? x.exprKind.value.elements : undefined);

  const call = (x: Expr, c: Extract<Expr['exprKind'], { case: 'callExpr' }>['value']): Typed => {
    const fn = c.function;
    const args = c.args;
    const a0 = args[0];
    const a1 = args[1];
    if (c.target) {
      if (!STRING_OPS.includes(fn))
        return fail(x, 'CEL_UNSUPPORTED', `method '${fn}' is not supported${didYouMean(fn, STRING_OPS)}`);
      if (args.length !== 1 || !a0) return fail(x, 'CEL_TYPE', `${fn} takes one string argument`);
      return { t: 'bool', e: { k: 'strOp', op: fn as StringOp, a: str(c.target), b: str(a0) } };
    }
    if ((fn === '_&&_' || fn === '_||_') && a0 && a1) {
      return { t: 'bool', e: { k: fn === '_&&_' ? 'and' : 'or', a: bool(a0), b: bool(a1) } };
    }
    if (fn === '!_' && a0) return { t: 'bool', e: { k: 'not', a: bool(a0) } };
    if (fn === '-_' && a0 && a0.exprKind.case === 'constExpr' && a0.exprKind.value.constantKind.case === 'int64Value') {
      return { t: 'int', e: { k: 'lit', value: -a0.exprKind.value.constantKind.value } };
    }
    if (fn === 'size' && a0 && args.length === 1) {
      const v = visit(a0);
      if (v.t === 'list') return { t: 'int', e: { k: 'size', list: v.e } };
      return fail(x, 'CEL_UNSUPPORTED', `size() is supported on identity.scopes and identity.roles, not ${typeName(v)}`);
    }
    const op = COMPARE[fn];
    if (op && a0 && a1) {
      const l = visit(a0);
      const r = visit(a1);
      if (l.t !== r.t) return fail(x, 'CEL_TYPE', `cannot compare ${typeName(l)} with ${typeName(r)}`);
      if (l.t === 'int' && r.t === 'int') return { t: 'bool', e: { k: 'intCmp', op, a: l.e, b: r.e } };
      if (op !== '==' && op !== '!=') return fail(x, 'CEL_UNSUPPORTED', `${op} is supported on ints only`);
      if (l.t === 'string' && r.t === 'string') return { t: 'bool', e: { k: 'strEq', a: l.e, b: r.e, negate: op === '!=' } };
      if (l.t === 'bool' && r.t === 'bool') return { t: 'bool', e: { k: 'boolEq', a: l.e, b: r.e, negate: op === '!=' } };
      return fail(x, 'CEL_UNSUPPORTED', `== and != are supported on strings, ints and bools, not ${typeName(l)}`);
    }
    if (fn === '@in' && a0 && a1) {
      const items = literalList(a1);
      if (items) {
        const l = visit(a0);
        if (l.t === 'string') return { t: 'bool', e: { k: 'inStrings', a: l.e, values: items.map((i) => literalString(i)) } };
        if (l.t === 'int') return { t: 'bool', e: { k: 'inInts', a: l.e, values: items.map((i) => literalInt(i)) } };
        return fail(a0, 'CEL_UNSUPPORTED', `'in' a list literal is supported for strings and ints, not ${typeName(l)}`);
      }
      const r = visit(a1);
      if (r.t === 'list') return { t: 'bool', e: { k: 'inList', a: str(a0), list: r.e } };
      if (r.t === 'headers') return { t: 'bool', e: { k: 'hasHeader', name: headerName(a0) } };
      return fail(a1, 'CEL_UNSUPPORTED', `'in' is supported on lists and request.headers, not ${typeName(r)}`);
    }
    if (fn === '_[_]' && a0 && a1) {
      const base = visit(a0);
      if (base.t !== 'headers')
        return fail(x, 'CEL_UNSUPPORTED', `indexing is supported on request.headers only, not ${typeName(base)}`);
      return { t: 'string', e: { k: 'header', name: headerName(a1) } };
    }
    if (fn === '_?_:_') return fail(x, 'CEL_UNSUPPORTED', 'the conditional operator ?: is not supported; use && and ||');
    return fail(x, 'CEL_UNSUPPORTED', `'${fn.replace(/^_(.*)_$/, '$1')}' is not supported`);
  };

  const literalString = (x: Expr, what = 'list elements'): string => {
    const k = x.exprKind;
    if (k.case === 'constExpr' && k.value.constantKind.case === 'stringValue') return k.value.constantKind.value;
    return fail(x, 'CEL_UNSUPPORTED', `${what} must be string literals`);
  };
  const literalInt = (x: Expr): bigint => {
    const v = visit(x);
    if (v.t === 'int' && v.e.k === 'lit') return v.e.value;
    return fail(x, 'CEL_UNSUPPORTED', 'list elements must be int literals');
  };
  const headerName = (x: Expr): string => {
    const name = literalString(x, 'header names');
    if (name !== name.toLowerCase()) return fail(x, 'CEL_TYPE', `header names are lowercase: use '${name.toLowerCase()}'`);
    return name;
  };

  try {
    return { ir: bool(parsed.expr) };
  } catch (err) {
    if (err instanceof Fail) return { problem: err.problem };
    throw err;
  }
}
