/**
 * Comparisons against string literals, emitted inline: the literal's bytes become i64/i32
 * constants compared with loads of the operand, instead of a call to $str_eq/$memeq that walks
 * both strings. Conditions, methods, hosts and path segments are almost all literal
 * comparisons, and calls are what the module spends most of its time on otherwise.
 *
 * Every load is guarded by a length check, so no load reads past the operand's bytes.
 * Operand expressions (`ptr`, `len`) are evaluated more than once: they must be free of side
 * effects (loads of fixed addresses, globals, locals), which is all the emitters pass.
 */

const encoder = new TextEncoder();

/** i32 expression: 1 when the `bytes.length` bytes at address `addr` equal `bytes`. */
export function bytesEqualAt(addr: string, bytes: Uint8Array): string {
  const tests: string[] = [];
  let at = 0;
  const word = (size: number): bigint => {
    let v = 0n;
    for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[at + i] as number);
    return v;
  };
  while (bytes.length - at >= 8) {
    tests.push(`(i64.eq (i64.load offset=${at} align=1 ${addr}) (i64.const ${BigInt.asIntN(64, word(8))}))`);
    at += 8;
  }
  if (bytes.length - at >= 4) {
    tests.push(`(i32.eq (i32.load offset=${at} align=1 ${addr}) (i32.const ${BigInt.asIntN(32, word(4))}))`);
    at += 4;
  }
  if (bytes.length - at >= 2) {
    tests.push(`(i32.eq (i32.load16_u offset=${at} align=1 ${addr}) (i32.const ${word(2)}))`);
    at += 2;
  }
  if (bytes.length - at >= 1) {
    tests.push(`(i32.eq (i32.load8_u offset=${at} ${addr}) (i32.const ${word(1)}))`);
    at += 1;
  }
  return tests.length === 0 ? '(i32.const 1)' : tests.reduce((a, b) => `(i32.and ${a} ${b})`);
}

/** i32 expression for `s == lit` (same as $str_eq with the literal's pair). */
export function equalsLiteral(ptr: string, len: string, lit: string): string {
  const b = encoder.encode(lit);
  return `(if (result i32) (i32.eq ${len} (i32.const ${b.length})) (then ${bytesEqualAt(ptr, b)}) (else (i32.const 0)))`;
}

/** i32 expression for `s.startsWith(lit)` (same as $starts). */
export function startsWithLiteral(ptr: string, len: string, lit: string): string {
  const b = encoder.encode(lit);
  return `(if (result i32) (i32.ge_u ${len} (i32.const ${b.length})) (then ${bytesEqualAt(ptr, b)}) (else (i32.const 0)))`;
}

/** i32 expression for `s.endsWith(lit)` (same as $ends). */
export function endsWithLiteral(ptr: string, len: string, lit: string): string {
  const b = encoder.encode(lit);
  const addr = `(i32.sub (i32.add ${ptr} ${len}) (i32.const ${b.length}))`;
  return `(if (result i32) (i32.ge_u ${len} (i32.const ${b.length})) (then ${bytesEqualAt(addr, b)}) (else (i32.const 0)))`;
}
