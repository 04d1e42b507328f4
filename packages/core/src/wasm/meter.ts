import { CoreErrorCode, VerificationError } from '../error.js';
import { META_SECTION, METER_MODULE, METER_REFUEL, TABLES_SECTION } from './abi.js';
import { abiMismatch } from './abi-check.js';

/**
 * Metering: bounded execution for verified policy modules.
 *
 * A signed module is trusted to be what its signer published, not to terminate: a `loop`
 * that never exits would hold the worker's only thread forever. WebAssembly has no
 * interrupt the host can raise from JavaScript, so the host rewrites the verified bytes
 * before compiling them (the transformation is deterministic; what runs is still exactly
 * what was verified, plus these checks):
 *
 * - one defined global, the fuel (mutable i32), appended after the module's own globals;
 * - one imported function, `apx_meter.refuel: [] -> [i32]`, appended after the module's own
 *   function imports (so every defined function index moves up by one: calls, exports, the
 *   start function, element segments and `ref.func` are renumbered);
 * - custom sections other than the ABI's `apx.meta` and `apx.tables` are left out (they never
 *   change what runs; `name` would now name the wrong functions);
 * - at the entry of every function and at the head of every `loop`, a charge: the fuel is
 *   decreased by the number of instructions of that region (the function body outside its
 *   loops, or the loop body outside its inner loops), and when it falls below zero the host's
 *   refuel is called. Every instruction executed is therefore paid for before it runs.
 *
 * The host's refuel looks at the clock and either hands out another chunk or throws, which
 * unwinds the module: the decision is stopped (PolicyHost turns it into a deny). The fuel is
 * a counter across decisions, so a decision that never runs out costs only the charges
 * (a few instructions per loop iteration and call) and no clock reads.
 *
 * The instruction set metered is what `apx compile` emits and a little more: the MVP,
 * sign extension, saturating truncation, multi-value blocks, reference-typed `select`,
 * `table.get/set` and the bulk memory instructions (weighted: they copy up to the whole
 * 1 MiB memory). Anything else (SIMD, threads, exceptions, tail calls, GC, table bulk
 * instructions whose cost has no bound here) is refused: a policy module has no use for it.
 */

/** Fuel handed out per refuel: the host reads the clock once per this many instructions. */
export const FUEL_CHUNK = 1 << 20;
/** Weight of memory.fill, memory.copy and memory.init: up to 1 MiB each (the ABI's memory cap). */
const BULK_WEIGHT = 1 << 14;
/** The charge itself executes instructions too; each region pays for its own check. */
const CHARGE_WEIGHT = 4;
/** Largest charge of one region: keeps `fuel - cost` inside i32 whatever the fuel was. */
const MAX_CHARGE = 1 << 30;

const WASM_HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
const SECTION = { custom: 0, type: 1, import: 2, function: 3, table: 4, memory: 5, global: 6, export: 7 } as const;
const START = 8;
const ELEMENT = 9;
const CODE = 10;
const TAG = 13;
/** Where each known section goes (binary format §5.5.2); custom sections stay where they were. */
const ORDER: Record<number, number> = { 1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13 };

/** The module is not well-formed WebAssembly (V8 would refuse it too). */
class Malformed extends Error {}
/** Well-formed, but uses something policy modules may not use. */
class Unsupported extends Error {}

/** Single-byte value types (numbers, v128, funcref, externref). */
const isValType = (b: number) => b === 0x7f || b === 0x7e || b === 0x7d || b === 0x7c || b === 0x7b || b === 0x70 || b === 0x6f;

class Reader {
  constructor(
    readonly bytes: Uint8Array,
    public at: number,
    readonly end: number,
  ) {}

  byte(): number {
    if (this.at >= this.end) throw new Malformed('unexpected end of section');
    return this.bytes[this.at++] as number;
  }

  u32(): number {
    let result = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      const b = this.byte();
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) {
        if (result > 0xffffffff) throw new Malformed('integer too large');
        return result;
      }
    }
    throw new Malformed('integer representation too long');
  }

  /** Skips a signed LEB128 of at most `maxBytes` bytes (s32: 5, s33: 5, s64: 10). */
  sleb(maxBytes: number): void {
    for (let i = 0; i < maxBytes; i++) if ((this.byte() & 0x80) === 0) return;
    throw new Malformed('integer representation too long');
  }

  skip(n: number): void {
    if (n > this.end - this.at) throw new Malformed('unexpected end of section');
    this.at += n;
  }

  name(): string {
    const length = this.u32();
    const start = this.at;
    this.skip(length);
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(this.bytes.subarray(start, this.at));
    } catch {
      throw new Malformed('name is not UTF-8');
    }
  }

  valType(): void {
    if (!isValType(this.byte())) throw new Unsupported('a value type outside numbers, v128, funcref and externref');
  }

  limits(): void {
    const flags = this.byte();
    if (flags > 0x07) throw new Malformed(`limits flags 0x${flags.toString(16)}`);
    this.u32();
    if (flags & 0x01) this.u32();
  }
}

/** Encodes an unsigned LEB128. */
function uleb(n: number): number[] {
  const out: number[] = [];
  let v = n;
  do {
    let b = v % 128;
    v = Math.floor(v / 128);
    if (v > 0) b |= 0x80;
    out.push(b);
  } while (v > 0);
  return out;
}

/** Encodes a signed LEB128 (non-negative values only here). */
function sleb(n: number): number[] {
  const out: number[] = [];
  let v = n;
  for (;;) {
    const b = v & 0x7f;
    v = Math.floor(v / 128);
    if (v === 0 && (b & 0x40) === 0) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

/** A copy of a byte range with some unsigned LEB128 function indices re-encoded. */
interface IndexPatch {
  start: number;
  end: number;
  index: number;
}

/** Bytes appended to one growing buffer (doubling): few allocations, one copy per byte. */
class Writer {
  private buffer: Uint8Array;
  length = 0;

  constructor(capacity = 256) {
    this.buffer = new Uint8Array(Math.max(capacity, 16));
  }

  private reserve(n: number): void {
    if (this.length + n <= this.buffer.length) return;
    let size = this.buffer.length * 2;
    while (size < this.length + n) size *= 2;
    const bigger = new Uint8Array(size);
    bigger.set(this.buffer.subarray(0, this.length));
    this.buffer = bigger;
  }

  bytes(b: Uint8Array | readonly number[]): void {
    this.reserve(b.length);
    if (b instanceof Uint8Array) this.buffer.set(b, this.length);
    else for (let i = 0; i < b.length; i++) this.buffer[this.length + i] = b[i] as number;
    this.length += b.length;
  }

  /** Copies [start, end) of `source`: short runs byte by byte (a subarray costs more than them). */
  range(source: Uint8Array, start: number, end: number): void {
    const n = end - start;
    if (n >= 64) {
      this.bytes(source.subarray(start, end));
      return;
    }
    this.reserve(n);
    for (let i = 0; i < n; i++) this.buffer[this.length + i] = source[start + i] as number;
    this.length += n;
  }

  /** Copies [start, end) of `source`, replacing each patched index (patches in order). */
  copy(source: Uint8Array, start: number, end: number, patches: readonly IndexPatch[] = [], shift = 0): void {
    let at = start;
    for (const p of patches) {
      if (p.start > at) this.range(source, at, p.start);
      this.bytes(uleb(p.index >= shift ? p.index + 1 : p.index));
      at = p.end;
    }
    if (end > at) this.range(source, at, end);
  }

  /** Empties the writer, keeping its buffer. */
  reset(): void {
    this.length = 0;
  }

  /** The bytes written (a view: valid until the next write or reset). */
  concat(): Uint8Array {
    return this.buffer.subarray(0, this.length);
  }
}

interface RawSection {
  id: number;
  /** The whole section, framing included. */
  start: number;
  contentStart: number;
  end: number;
}

/** What one pass over a function body (or a constant expression) found. */
interface Scan {
  /** Function indices to renumber. */
  patches: IndexPatch[];
  /** Offsets just after each `loop` blocktype, in order, and the region each opens. */
  loops: Array<{ at: number; region: number }>;
  /** Instruction weight per region: 0 is the function body outside loops, then one per loop. */
  costs: number[];
}

/** The position after one LEB128 integer at `at`, of at most `max` bytes. */
function skipLeb(b: Uint8Array, at: number, end: number, max: number): number {
  const limit = Math.min(end, at + max);
  for (let i = at; i < limit; i++) if ((b[i] as number) < 0x80) return i + 1;
  throw new Malformed(at + max <= end ? 'integer representation too long' : 'unexpected end of section');
}

/** The position after a block type: empty, one value type, or a type index (s33). */
function skipBlockType(b: Uint8Array, at: number, end: number): number {
  if (at >= end) throw new Malformed('unexpected end of section');
  const t = b[at] as number;
  if (t === 0x40 || isValType(t)) return at + 1;
  if ((t & 0xc0) === 0x40) throw new Unsupported('a block of a reference type (GC)');
  return skipLeb(b, at, end, 5);
}

/** The position after a memarg: alignment (bit 6: a memory index follows), then the offset. */
function skipMemArg(r: Reader, at: number): number {
  const first = r.bytes[at];
  if (first !== undefined && first < 0x40) return skipLeb(r.bytes, at + 1, r.end, 10);
  r.at = at;
  if (r.u32() & 0x40) r.u32();
  return skipLeb(r.bytes, r.at, r.end, 10);
}

/** Stack of block regions, grown on demand. */
function grown(stack: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> {
  const bigger = new Int32Array(stack.length * 2);
  bigger.set(stack);
  return bigger;
}

/**
 * Decodes one expression up to its final `end`, recording what metering needs. Every
 * immediate is decoded, so instruction boundaries are exact; a byte sequence that does not
 * decode is Malformed, an instruction outside the metered set is Unsupported. This runs over
 * every instruction of every artifact loaded, so it keeps its state in locals: the position,
 * the innermost region and the count not yet added to it.
 */
function scanExpression(r: Reader, constant: boolean): Scan {
  const b = r.bytes;
  const end = r.end;
  let at = r.at;
  const patches: IndexPatch[] = [];
  const loops: Array<{ at: number; region: number }> = [];
  const costs: number[] = [0];
  // The region of each open block: a loop opens its own, other blocks stay in their parent's.
  let stack = new Int32Array(16);
  let depth = 1; // stack[0] = 0: the function body (or the constant expression)
  let region = 0;
  let cost = 0;
  for (;;) {
    if (at >= end) throw new Malformed('unexpected end of section');
    const op = b[at++] as number;
    cost++;
    if (constant && !CONSTANT_OPS.has(op)) throw new Malformed(`opcode 0x${op.toString(16)} in a constant expression`);
    switch (op) {
      case 0x0b: {
        // end
        depth--;
        if (depth === 0) {
          costs[region] = (costs[region] as number) + cost;
          r.at = at;
          return { patches, loops, costs };
        }
        const outer = stack[depth - 1] as number;
        if (outer !== region) {
          costs[region] = (costs[region] as number) + cost;
          cost = 0;
          region = outer;
        }
        break;
      }
      case 0x02: // block
      case 0x04: // if
        at = skipBlockType(b, at, end);
        if (depth === stack.length) stack = grown(stack);
        stack[depth++] = region;
        break;
      case 0x03: // loop
        at = skipBlockType(b, at, end);
        costs[region] = (costs[region] as number) + cost;
        cost = 0;
        region = costs.length;
        costs.push(0);
        if (depth === stack.length) stack = grown(stack);
        stack[depth++] = region;
        loops.push({ at, region });
        break;
      case 0x0c: // br
      case 0x0d: // br_if
      case 0x20: // local.get
      case 0x21: // local.set
      case 0x22: // local.tee
      case 0x23: // global.get
      case 0x24: // global.set
      case 0x25: // table.get
      case 0x26: // table.set
      case 0x3f: // memory.size
      case 0x40: // memory.grow
      case 0x41: // i32.const
        at = skipLeb(b, at, end, 5);
        break;
      case 0x42: // i64.const
        at = skipLeb(b, at, end, 10);
        break;
      case 0x43: // f32.const
      case 0x44: // f64.const
        at += op === 0x43 ? 4 : 8;
        if (at > end) throw new Malformed('unexpected end of section');
        break;
      case 0x0e: {
        // br_table: the label vector, then the default label
        r.at = at;
        const count = r.u32();
        at = r.at;
        for (let i = 0; i <= count; i++) at = skipLeb(b, at, end, 5);
        break;
      }
      case 0x10: // call
      case 0xd2: {
        // ref.func
        r.at = at;
        const index = r.u32();
        patches.push({ start: at, end: r.at, index });
        at = r.at;
        break;
      }
      case 0x11: // call_indirect: type index, table index
        at = skipLeb(b, skipLeb(b, at, end, 5), end, 5);
        break;
      case 0x1c: {
        // select with value types
        r.at = at;
        for (let n = r.u32(); n > 0; n--) r.valType();
        at = r.at;
        break;
      }
      case 0xd0: {
        // ref.null: funcref or externref
        if (at >= end) throw new Malformed('unexpected end of section');
        const heap = b[at++];
        if (heap !== 0x70 && heap !== 0x6f) throw new Unsupported('ref.null of a typed reference (GC)');
        break;
      }
      case 0xfc:
        r.at = at;
        cost += prefixed(r);
        at = r.at;
        break;
      default:
        if (op >= 0x45 && op <= 0xc4) break; // numeric, sign extension
        if (op >= 0x28 && op <= 0x3e) {
          at = skipMemArg(r, at);
          break;
        }
        if (op <= 0x01 || op === 0x05 || op === 0x0f || op === 0x1a || op === 0x1b || op === 0xd1) break;
        throw new Unsupported(describe(op));
    }
  }
}

/** Opcodes allowed in constant expressions (with extended-const arithmetic). */
const CONSTANT_OPS = new Set([0x0b, 0x23, 0x41, 0x42, 0x43, 0x44, 0xd0, 0xd2, 0x6a, 0x6b, 0x6c, 0x7c, 0x7d, 0x7e]);

/** The 0xFC prefix: saturating truncation (0-7) and bulk memory (8-11); returns the extra weight. */
function prefixed(r: Reader): number {
  const sub = r.u32();
  if (sub <= 7) return 0;
  switch (sub) {
    case 8: // memory.init: data index, memory index
      r.u32();
      r.u32();
      return BULK_WEIGHT;
    case 9: // data.drop
      r.u32();
      return 0;
    case 10: // memory.copy: two memory indices
      r.u32();
      r.u32();
      return BULK_WEIGHT;
    case 11: // memory.fill
      r.u32();
      return BULK_WEIGHT;
    default:
      throw new Unsupported(`table bulk instruction 0xfc ${sub}`);
  }
}

function describe(op: number): string {
  const hex = `0x${op.toString(16)}`;
  if (op === 0xfd) return 'SIMD instructions (0xfd)';
  if (op === 0xfe) return 'atomic instructions (0xfe)';
  if (op === 0xfb) return 'GC instructions (0xfb)';
  if ((op >= 0x06 && op <= 0x0a) || op === 0x18 || op === 0x19 || op === 0x1f) return `exception handling (${hex})`;
  if (op === 0x12 || op === 0x13 || op === 0x14 || op === 0x15) return `tail or reference calls (${hex})`;
  return `opcode ${hex}`;
}

/** The charge at a region's head: fuel -= cost; if fuel < 0 then fuel = refuel(). */
function charge(cost: number, fuel: number[], refuel: number[]): number[] {
  const weight = Math.min(cost + CHARGE_WEIGHT, MAX_CHARGE);
  return [
    0x23,
    ...fuel, // global.get $fuel
    0x41,
    ...sleb(weight), // i32.const weight
    0x6b, // i32.sub
    0x24,
    ...fuel, // global.set $fuel
    0x23,
    ...fuel, // global.get $fuel
    0x41,
    0x00, // i32.const 0
    0x48, // i32.lt_s
    0x04,
    0x40, // if
    0x10,
    ...refuel, //   call $refuel
    0x24,
    ...fuel, //   global.set $fuel
    0x0b, // end
  ];
}

interface Layout {
  sections: RawSection[];
  importedFuncs: number;
  importedGlobals: number;
}

function readLayout(bytes: Uint8Array): Layout {
  if (bytes.length < 8 || WASM_HEADER.some((b, i) => bytes[i] !== b)) throw new Malformed('not a WebAssembly module');
  const sections: RawSection[] = [];
  const seen = new Set<number>();
  const r = new Reader(bytes, 8, bytes.length);
  let importedFuncs = 0;
  let importedGlobals = 0;
  while (r.at < bytes.length) {
    const start = r.at;
    const id = r.byte();
    const size = r.u32();
    const contentStart = r.at;
    r.skip(size);
    if (id !== SECTION.custom) {
      if (ORDER[id] === undefined) throw new Malformed(`unknown section id ${id}`);
      if (id === TAG) throw new Unsupported('exception tags (section 13)');
      if (seen.has(id)) throw new Malformed(`duplicate section ${id}`);
      seen.add(id);
    }
    sections.push({ id, start, contentStart, end: r.at });
    if (id === SECTION.import) {
      const ir = new Reader(bytes, contentStart, r.at);
      for (let n = ir.u32(); n > 0; n--) {
        const module = ir.name();
        ir.name();
        if (module === METER_MODULE) throw new Unsupported(`an import from "${METER_MODULE}", which the host reserves`);
        const kind = ir.byte();
        if (kind === 0x00) {
          ir.u32();
          importedFuncs++;
        } else if (kind === 0x01) {
          ir.valType();
          ir.limits();
        } else if (kind === 0x02) {
          ir.limits();
        } else if (kind === 0x03) {
          ir.valType();
          ir.byte();
          importedGlobals++;
        } else throw new Unsupported(`import kind ${kind}`);
      }
      if (ir.at !== ir.end) throw new Malformed('import section size mismatch');
    }
  }
  return { sections, importedFuncs, importedGlobals };
}

/**
 * Returns the metered form of a module (see the top of this file). Throws a
 * VerificationError: ARTIFACT_INVALID_WASM when the bytes are not well-formed WebAssembly,
 * ARTIFACT_ABI_MISMATCH when they use an instruction or section policy modules may not use.
 */
export function meterModule(bytes: Uint8Array): Uint8Array {
  // The verified bytes must be valid as they are. The rewrite appends a type, a global and
  // an import; in an invalid module, an index one past the end would come to name them (a
  // function of a missing type would get refuel's, a global.set past the end would reset the
  // fuel), so an invalid module could turn valid, and unmetered. V8 validates, we rewrite.
  if (!WebAssembly.validate(bytes)) {
    let detail = 'the module does not validate';
    try {
      new WebAssembly.Module(bytes);
    } catch (err) {
      detail = (err as Error).message;
    }
    throw new VerificationError(
      CoreErrorCode.ARTIFACT_INVALID_WASM,
      `invalid artifact: WebAssembly validation failed: ${detail}`,
      {
        hint: 'recompile the policy with apx compile',
      },
    );
  }
  try {
    // A plain view: a Buffer's subarray goes through its species constructor, which costs a
    // microsecond per slice, and the rewrite slices at every insertion point.
    return rewrite(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (err) {
    if (err instanceof Unsupported) throw abiMismatch(`the module uses ${err.message}, which policy modules may not use`);
    if (err instanceof Malformed) {
      throw new VerificationError(
        CoreErrorCode.ARTIFACT_INVALID_WASM,
        `invalid artifact: WebAssembly validation failed: ${err.message}`,
        { hint: 'recompile the policy with apx compile' },
      );
    }
    throw err;
  }
}

function rewrite(bytes: Uint8Array): Uint8Array {
  const { sections, importedFuncs, importedGlobals } = readLayout(bytes);
  const byId = new Map(sections.filter((s) => s.id !== SECTION.custom).map((s) => [s.id, s]));
  const shift = importedFuncs; // defined function indices at or above this move up by one

  const typeSection = byId.get(SECTION.type);
  const typeCount = typeSection ? new Reader(bytes, typeSection.contentStart, typeSection.end).u32() : 0;
  const globalSection = byId.get(SECTION.global);
  const definedGlobals = globalSection ? new Reader(bytes, globalSection.contentStart, globalSection.end).u32() : 0;
  const fuel = uleb(importedGlobals + definedGlobals);
  const refuel = uleb(importedFuncs);

  const rebuilt = new Map<number, Writer>();
  // Type section: one more type, [] -> [i32], for refuel.
  {
    const w = new Writer();
    w.bytes(uleb(typeCount + 1));
    if (typeSection) {
      const r = new Reader(bytes, typeSection.contentStart, typeSection.end);
      r.u32();
      w.bytes(bytes.subarray(r.at, typeSection.end));
    }
    w.bytes([0x60, 0x00, 0x01, 0x7f]);
    rebuilt.set(SECTION.type, w);
  }
  // Import section: refuel, after the module's own imports.
  {
    const w = new Writer();
    const importSection = byId.get(SECTION.import);
    const r = importSection ? new Reader(bytes, importSection.contentStart, importSection.end) : undefined;
    w.bytes(uleb((r ? r.u32() : 0) + 1));
    if (r && importSection) w.bytes(bytes.subarray(r.at, importSection.end));
    const encode = (s: string) => {
      const b = new TextEncoder().encode(s);
      return [...uleb(b.length), ...b];
    };
    w.bytes([...encode(METER_MODULE), ...encode(METER_REFUEL), 0x00, ...uleb(typeCount)]);
    rebuilt.set(SECTION.import, w);
  }
  // Global section: the module's globals (ref.func renumbered), then the fuel.
  {
    const w = new Writer();
    w.bytes(uleb(definedGlobals + 1));
    if (globalSection) {
      const r = new Reader(bytes, globalSection.contentStart, globalSection.end);
      for (let n = r.u32(); n > 0; n--) {
        const start = r.at;
        r.valType();
        r.byte(); // mutability
        const scan = scanExpression(r, true);
        w.copy(bytes, start, r.at, scan.patches, shift);
      }
      if (r.at !== r.end) throw new Malformed('global section size mismatch');
    }
    w.bytes([0x7f, 0x01, 0x41, ...sleb(FUEL_CHUNK), 0x0b]);
    rebuilt.set(SECTION.global, w);
  }
  const exportSection = byId.get(SECTION.export);
  if (exportSection) rebuilt.set(SECTION.export, rewriteExports(bytes, exportSection, shift));
  const startSection = byId.get(START);
  if (startSection) {
    const r = new Reader(bytes, startSection.contentStart, startSection.end);
    const patch = { start: r.at, end: 0, index: r.u32() };
    patch.end = r.at;
    const w = new Writer();
    w.copy(bytes, startSection.contentStart, startSection.end, [patch], shift);
    rebuilt.set(START, w);
  }
  const elementSection = byId.get(ELEMENT);
  if (elementSection) rebuilt.set(ELEMENT, rewriteElements(bytes, elementSection, shift));
  const codeSection = byId.get(CODE);
  const code = codeSection ? planCode(bytes, codeSection, shift, fuel, refuel) : undefined;

  // Reassemble in the original order; sections the module lacked go where the order puts them.
  // Everything is sized first and written once into one buffer of the exact size: a large
  // fresh buffer costs page faults per megabyte, so there is only one.
  const pieces: Array<{ header: number[]; write: (out: Writer) => void; size: number }> = [];
  const raw = (start: number, end: number) =>
    pieces.push({ header: [], size: end - start, write: (out) => out.range(bytes, start, end) });
  const framed = (id: number, size: number, write: (out: Writer) => void) =>
    pieces.push({ header: [id, ...uleb(size)], size, write });
  const rebuiltSection = (id: number) => {
    if (id === CODE && code) {
      framed(CODE, code.size, (out) => writeCode(out, bytes, code, shift));
      return;
    }
    const w = rebuilt.get(id) as Writer;
    framed(id, w.length, (out) => out.bytes(w.concat()));
  };
  const pending = [...rebuilt.keys()].filter((id) => !byId.has(id)).sort((a, b) => (ORDER[a] as number) - (ORDER[b] as number));
  const flushBefore = (rank: number) => {
    while (pending.length > 0 && (ORDER[pending[0] as number] as number) < rank) rebuiltSection(pending.shift() as number);
  };
  for (const s of sections) {
    if (s.id === SECTION.custom) {
      // Custom sections never change what runs. Only the ABI's are kept (the ABI check reads
      // them from the compiled module); the others (names, which would now be off by one,
      // debug information, padding up to the size cap) are not copied.
      const name = new Reader(bytes, s.contentStart, s.end).name();
      if (name === META_SECTION || name === TABLES_SECTION) raw(s.start, s.end);
      continue;
    }
    flushBefore(ORDER[s.id] as number);
    if (rebuilt.has(s.id) || (s.id === CODE && code)) rebuiltSection(s.id);
    else raw(s.start, s.end);
  }
  flushBefore(Number.POSITIVE_INFINITY);
  const total = pieces.reduce((sum, p) => sum + p.header.length + p.size, WASM_HEADER.length);
  const out = new Writer(total);
  out.bytes(WASM_HEADER);
  for (const p of pieces) {
    out.bytes(p.header);
    const before = out.length;
    p.write(out);
    if (out.length - before !== p.size) throw new Error('metering: section size miscounted');
  }
  return out.concat();
}

function rewriteExports(bytes: Uint8Array, s: RawSection, shift: number): Writer {
  const r = new Reader(bytes, s.contentStart, s.end);
  const patches: IndexPatch[] = [];
  for (let n = r.u32(); n > 0; n--) {
    r.name();
    const kind = r.byte();
    const start = r.at;
    const index = r.u32();
    if (kind === 0x00) patches.push({ start, end: r.at, index });
  }
  if (r.at !== r.end) throw new Malformed('export section size mismatch');
  const w = new Writer();
  w.copy(bytes, s.contentStart, s.end, patches, shift);
  return w;
}

/** Element segments (all eight encodings): function indices and ref.func renumbered. */
function rewriteElements(bytes: Uint8Array, s: RawSection, shift: number): Writer {
  const r = new Reader(bytes, s.contentStart, s.end);
  const patches: IndexPatch[] = [];
  for (let n = r.u32(); n > 0; n--) {
    const flags = r.u32();
    if (flags > 7) throw new Malformed(`element segment flags ${flags}`);
    const passiveOrDeclarative = (flags & 0x01) !== 0;
    const explicitTable = (flags & 0x02) !== 0;
    const expressions = (flags & 0x04) !== 0;
    if (!passiveOrDeclarative) {
      if (explicitTable) r.u32();
      patches.push(...scanExpression(r, true).patches);
    }
    if (passiveOrDeclarative || explicitTable) {
      const kind = r.byte(); // elemkind 0x00, or a reference type with expressions
      if (expressions ? kind !== 0x70 && kind !== 0x6f : kind !== 0x00) throw new Malformed('element kind');
    }
    for (let items = r.u32(); items > 0; items--) {
      if (expressions) patches.push(...scanExpression(r, true).patches);
      else {
        const start = r.at;
        const index = r.u32();
        patches.push({ start, end: r.at, index });
      }
    }
  }
  if (r.at !== r.end) throw new Malformed('element section size mismatch');
  const w = new Writer();
  w.copy(bytes, s.contentStart, s.end, patches, shift);
  return w;
}

/** One function body as metered: where its parts are, what is inserted, its new size. */
interface BodyPlan {
  localsStart: number;
  codeStart: number;
  bodyEnd: number;
  scan: Scan;
  charges: number[][];
  size: number;
}

/** Scans every function body and sizes the metered code section (written by writeCode). */
function planCode(
  bytes: Uint8Array,
  s: RawSection,
  shift: number,
  fuel: number[],
  refuel: number[],
): { count: number; bodies: BodyPlan[]; size: number } {
  const r = new Reader(bytes, s.contentStart, s.end);
  const count = r.u32();
  const bodies: BodyPlan[] = [];
  let size = uleb(count).length;
  for (let n = count; n > 0; n--) {
    const oldSize = r.u32();
    const bodyEnd = r.at + oldSize;
    if (bodyEnd > r.end) throw new Malformed('function body exceeds the code section');
    const body = new Reader(bytes, r.at, bodyEnd);
    const localsStart = body.at;
    for (let groups = body.u32(); groups > 0; groups--) {
      body.u32();
      body.valType();
    }
    const codeStart = body.at;
    const scan = scanExpression(body, false);
    if (body.at !== bodyEnd) throw new Malformed('function body size mismatch');
    // Charges added, renumbered indices re-encoded (an index may take one more byte).
    const charges = scan.costs.map((cost) => charge(cost, fuel, refuel));
    let newSize = oldSize;
    for (const c of charges) newSize += c.length;
    for (const p of scan.patches) newSize += uleb(p.index >= shift ? p.index + 1 : p.index).length - (p.end - p.start);
    bodies.push({ localsStart, codeStart, bodyEnd, scan, charges, size: newSize });
    size += uleb(newSize).length + newSize;
    r.at = bodyEnd;
  }
  if (r.at !== r.end) throw new Malformed('code section size mismatch');
  return { count, bodies, size };
}

/** Writes the code section planned by planCode: each body with its charges and renumbered calls. */
function writeCode(w: Writer, bytes: Uint8Array, plan: { count: number; bodies: BodyPlan[] }, shift: number): void {
  w.bytes(uleb(plan.count));
  for (const { localsStart, codeStart, bodyEnd, scan, charges, size } of plan.bodies) {
    w.bytes(uleb(size));
    const written = w.length;
    w.copy(bytes, localsStart, codeStart);
    w.bytes(charges[0] as number[]);
    let at = codeStart;
    let p = 0;
    for (const loop of scan.loops) {
      const first = p;
      while (p < scan.patches.length && (scan.patches[p] as IndexPatch).start < loop.at) p++;
      w.copy(bytes, at, loop.at, scan.patches.slice(first, p), shift);
      w.bytes(charges[loop.region] as number[]);
      at = loop.at;
    }
    w.copy(bytes, at, bodyEnd, p === 0 ? scan.patches : scan.patches.slice(p), shift);
    if (w.length - written !== size) throw new Error('metering: function body size miscounted');
  }
}
