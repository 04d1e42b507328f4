import { REQUEST } from '@apx/core';
import type { CondExpr, IntExpr, StrExpr } from '../cel/ir.js';
import type { DataImage } from './data.js';
import { endsWithLiteral, equalsLiteral, startsWithLiteral } from './literals.js';

/**
 * A condition as a WAT expression of type i32 with CEL's three values: 0 false, 1 true,
 * 2 error. Only a header read can fail (the header is absent); the error travels up through
 * comparisons and is absorbed by && and || exactly as the CEL specification says.
 */
export function emitCondition(
  root: CondExpr,
  data: DataImage,
  slotOf: (header: string) => number,
): { code: string; locals: number } {
  let locals = 0;
  /** `a` decides alone when it equals `decisive`; otherwise the helper combines a and b. */
  const shortCircuit = (decisive: 0 | 1, a: string, b: string): string => {
    const t = `$t${locals++}`;
    const u = `$t${locals++}`;
    // CEL's three-valued && and ||, inline: when `a` is not decisive it is 1 or 2 for &&
    // (0 or 2 for ||); then a decisive `b` decides, and otherwise the result is the larger
    // of the two (2, error, wins over the neutral value).
    const rest = `(select (local.get ${t}) (local.get ${u}) (i32.gt_u (local.get ${t}) (local.get ${u})))`;
    return `(if (result i32) (i32.eq (local.tee ${t} ${a}) (i32.const ${decisive})) (then (i32.const ${decisive})) (else (if (result i32) (i32.eq (local.tee ${u} ${b}) (i32.const ${decisive})) (then (i32.const ${decisive})) (else ${rest}))))`;
  };
  const strOperand = (s: StrExpr): { ptr: string; len: string; err: string | null } => {
    switch (s.k) {
      case 'lit': {
        const r = data.string(s.value);
        return { ptr: `(i32.const ${r.ptr})`, len: `(i32.const ${r.len})`, err: null };
      }
      case 'request': {
        const at = REQUEST[s.field];
        return { ptr: `(i32.load (i32.const ${at}))`, len: `(i32.load (i32.const ${at + 4}))`, err: null };
      }
      case 'identity': {
        const g = { kind: 'kind', id: 'id', tenant: 'ten', plan: 'plan' }[s.field];
        return { ptr: `(global.get $${g}_p)`, len: `(global.get $${g}_l)`, err: null };
      }
      case 'header': {
        const at = slotOf(s.name);
        return {
          ptr: `(i32.load (i32.const ${at}))`,
          len: `(i32.load (i32.const ${at + 4}))`,
          err: `(i32.eqz (i32.load (i32.const ${at})))`,
        };
      }
    }
  };
  const withErr = (value: string, ...errs: (string | null)[]): string => {
    const e = errs.filter((x): x is string => x !== null);
    if (e.length === 0) return value;
    const any = e.reduce((a, b) => `(i32.or ${a} ${b})`);
    return `(select (i32.const 2) ${value} ${any})`;
  };
  const intOperand = (i: IntExpr): string => {
    switch (i.k) {
      case 'lit':
        return `(i64.const ${i.value.toString()})`;
      case 'bodySize':
        return `(i64.extend_i32_u (i32.load (i32.const ${REQUEST.bodySize})))`;
      case 'size':
        return `(i64.extend_i32_u (call $list_size (global.get $${i.list})))`;
    }
  };
  const I64_OP = { '==': 'eq', '!=': 'ne', '<': 'lt_s', '<=': 'le_s', '>': 'gt_s', '>=': 'ge_s' } as const;
  const STR_FN = { startsWith: 'starts', endsWith: 'ends', contains: 'contains' } as const;
  const cond = (e: CondExpr): string => {
    switch (e.k) {
      case 'bool':
        return `(i32.const ${e.value ? 1 : 0})`;
      case 'authenticated':
        return '(i32.ne (global.get $kind) (i32.const 0))';
      case 'and':
        // Short-circuit on a definite false; an error on the left still looks at the right
        // (CEL: error && false is false).
        return shortCircuit(0, cond(e.a), cond(e.b));
      case 'or':
        return shortCircuit(1, cond(e.a), cond(e.b));
      case 'not': {
        // Error stays error, else the negation.
        const t = `$t${locals++}`;
        return `(if (result i32) (i32.eq (local.tee ${t} ${cond(e.a)}) (i32.const 2)) (then (i32.const 2)) (else (i32.eqz (local.get ${t}))))`;
      }
      case 'boolEq':
        return `(call $booleq3 ${cond(e.a)} ${cond(e.b)} (i32.const ${e.negate ? 1 : 0}))`;
      case 'intCmp':
        return `(i64.${I64_OP[e.op]} ${intOperand(e.a)} ${intOperand(e.b)})`;
      case 'strEq': {
        const a = strOperand(e.a);
        const b = strOperand(e.b);
        const eq =
          e.b.k === 'lit'
            ? equalsLiteral(a.ptr, a.len, e.b.value)
            : e.a.k === 'lit'
              ? equalsLiteral(b.ptr, b.len, e.a.value)
              : `(call $str_eq ${a.ptr} ${a.len} ${b.ptr} ${b.len})`;
        return withErr(e.negate ? `(i32.eqz ${eq})` : eq, a.err, b.err);
      }
      case 'strOp': {
        const a = strOperand(e.a);
        const b = strOperand(e.b);
        if (e.b.k === 'lit' && e.op !== 'contains') {
          const test = e.op === 'startsWith' ? startsWithLiteral : endsWithLiteral;
          return withErr(test(a.ptr, a.len, e.b.value), a.err);
        }
        return withErr(`(call $${STR_FN[e.op]} ${a.ptr} ${a.len} ${b.ptr} ${b.len})`, a.err, b.err);
      }
      case 'inList': {
        const a = strOperand(e.a);
        return withErr(`(call $list_has (global.get $${e.list}) ${a.ptr} ${a.len})`, a.err);
      }
      case 'inStrings': {
        const a = strOperand(e.a);
        const tests = e.values.map((v) => equalsLiteral(a.ptr, a.len, v));
        const any = tests.length === 0 ? '(i32.const 0)' : tests.reduce((x, y) => `(i32.or ${x} ${y})`);
        return withErr(any, a.err);
      }
      case 'inInts': {
        const a = intOperand(e.a);
        const tests = e.values.map((v) => `(i64.eq ${a} (i64.const ${v.toString()}))`);
        return tests.length === 0 ? '(i32.const 0)' : tests.reduce((x, y) => `(i32.or ${x} ${y})`);
      }
      case 'hasHeader':
        return `(i32.ne (i32.load (i32.const ${slotOf(e.name)})) (i32.const 0))`;
    }
  };
  const code = cond(root);
  return { code, locals };
}
