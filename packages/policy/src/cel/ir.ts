/**
 * The typed form of the CEL subset apx/v1 compiles (docs/policy-language.md). The checker
 * produces it from @bufbuild/cel's AST; the WebAssembly code generator consumes it. Each
 * construct has exactly one meaning in both the module and the CEL interpreter.
 */
export type RequestStringField = 'method' | 'host' | 'path' | 'ip';
export type IdentityStringField = 'kind' | 'id' | 'tenant' | 'plan';
export type ListField = 'scopes' | 'roles';

export type StrExpr =
  | { k: 'lit'; value: string }
  | { k: 'request'; field: RequestStringField }
  | { k: 'identity'; field: IdentityStringField }
  /** `request.headers["name"]`: a CEL error ("no such key") when the header is absent. */
  | { k: 'header'; name: string };

export type IntExpr = { k: 'lit'; value: bigint } | { k: 'bodySize' } | { k: 'size'; list: ListField };

export type CompareOp = '==' | '!=' | '<' | '<=' | '>' | '>=';
export type StringOp = 'startsWith' | 'endsWith' | 'contains';

/** Evaluates to true, false or error (CEL's commutative error semantics for && and ||). */
export type CondExpr =
  | { k: 'bool'; value: boolean }
  | { k: 'authenticated' }
  | { k: 'and' | 'or'; a: CondExpr; b: CondExpr }
  | { k: 'not'; a: CondExpr }
  | { k: 'strEq'; a: StrExpr; b: StrExpr; negate: boolean }
  | { k: 'boolEq'; a: CondExpr; b: CondExpr; negate: boolean }
  | { k: 'intCmp'; op: CompareOp; a: IntExpr; b: IntExpr }
  | { k: 'strOp'; op: StringOp; a: StrExpr; b: StrExpr }
  | { k: 'inList'; a: StrExpr; list: ListField }
  | { k: 'inStrings'; a: StrExpr; values: string[] }
  | { k: 'inInts'; a: IntExpr; values: bigint[] }
  | { k: 'hasHeader'; name: string };

/** Header names a condition reads, for the ABI's header slots. */
export function headerNames(e: CondExpr, out: Set<string>): void {
  const str = (s: StrExpr) => {
    if (s.k === 'header') out.add(s.name);
  };
  switch (e.k) {
    case 'and':
    case 'or':
    case 'boolEq':
      headerNames(e.a, out);
      headerNames(e.b, out);
      return;
    case 'not':
      headerNames(e.a, out);
      return;
    case 'strEq':
    case 'strOp':
      str(e.a);
      str(e.b);
      return;
    case 'inList':
    case 'inStrings':
      str(e.a);
      return;
    case 'hasHeader':
      out.add(e.name);
      return;
    default:
      return;
  }
}
