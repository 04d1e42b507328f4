import { PolicyErrorCode, type Problem } from './error.js';
import { type ParsedSource, type PathSegment, renderPath } from './source.js';
import { didYouMean } from './suggest.js';

/** Collects problems with their source positions while the schema walks a document. */
export class Collector {
  readonly problems: Problem[] = [];
  constructor(
    private readonly source: ParsedSource,
    private readonly text: string,
  ) {}

  add(code: PolicyErrorCode, path: readonly PathSegment[], message: string, atKey = false): void {
    const { line, column } = this.source.locate(path, atKey);
    this.problems.push({ code, path: renderPath(path), message, line, column });
  }

  /** Adds a problem at a character offset inside the scalar at `path` (CEL positions). */
  addInside(code: PolicyErrorCode, path: readonly PathSegment[], message: string, value: string, offsetInValue: number): void {
    const base = this.source.locate(path);
    const lead = this.text[base.offset];
    const before = value.slice(0, offsetInValue);
    const newlines = before.split('\n').length - 1;
    let { line, column } = base;
    if (lead === '|' || lead === '>') {
      // Block scalar: the value starts on the next line; columns are approximate (indentation).
      line += 1 + newlines;
      column = before.length - before.lastIndexOf('\n');
    } else if (newlines === 0) {
      column += offsetInValue + (lead === '"' || lead === "'" ? 1 : 0);
    } else {
      line += newlines;
      column = before.length - before.lastIndexOf('\n');
    }
    this.problems.push({ code, path: renderPath(path), message, line, column });
  }
}

type Fields = Record<string, 'required' | 'optional'>;

const kindOf = (v: unknown): string =>
  v === null ? 'null' : Array.isArray(v) ? 'list' : typeof v === 'object' ? 'mapping' : typeof v;

/** A mapping with exactly the known fields: unknown ones and missing required ones are problems. */
export function obj(c: Collector, v: unknown, path: PathSegment[], fields: Fields): Record<string, unknown> | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    c.add(PolicyErrorCode.SCHEMA_TYPE, path, `expected a mapping, found ${kindOf(v)}`);
    return undefined;
  }
  const record = v as Record<string, unknown>;
  const known = Object.keys(fields);
  for (const key of Object.keys(record)) {
    if (!(key in fields)) {
      c.add(PolicyErrorCode.SCHEMA_UNKNOWN_FIELD, [...path, key], `unknown field '${key}'${didYouMean(key, known)}`, true);
    }
  }
  for (const [key, need] of Object.entries(fields)) {
    if (need === 'required' && (record[key] === undefined || record[key] === null)) {
      c.add(PolicyErrorCode.SCHEMA_MISSING_FIELD, path, `missing required field '${key}'`);
    }
  }
  return record;
}

export function str(
  c: Collector,
  v: unknown,
  path: PathSegment[],
  check?: { pattern: RegExp; expect: string },
): string | undefined {
  if (typeof v !== 'string') {
    c.add(PolicyErrorCode.SCHEMA_TYPE, path, `expected a string, found ${kindOf(v)}${check ? ` (${check.expect})` : ''}`);
    return undefined;
  }
  if (check && !check.pattern.test(v)) {
    c.add(PolicyErrorCode.SCHEMA_VALUE, path, `invalid value '${v}': expected ${check.expect}`);
    return undefined;
  }
  return v;
}

export function int(c: Collector, v: unknown, path: PathSegment[], min: number, max: number): number | undefined {
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    c.add(PolicyErrorCode.SCHEMA_TYPE, path, `expected an integer, found ${kindOf(v)}`);
    return undefined;
  }
  if (v < min || v > max) {
    c.add(PolicyErrorCode.SCHEMA_VALUE, path, `${v} is out of range ${min}..${max}`);
    return undefined;
  }
  return v;
}

export function oneOf<T extends string>(c: Collector, v: unknown, path: PathSegment[], values: readonly T[]): T | undefined {
  if (typeof v === 'string' && (values as readonly string[]).includes(v)) return v as T;
  const shown = typeof v === 'string' ? `'${v}'` : kindOf(v);
  const hint = typeof v === 'string' ? didYouMean(v, values) : '';
  c.add(PolicyErrorCode.SCHEMA_VALUE, path, `invalid value ${shown}: expected one of ${values.join(', ')}${hint}`);
  return undefined;
}

export function list(c: Collector, v: unknown, path: PathSegment[], max: number): unknown[] | undefined {
  if (!Array.isArray(v)) {
    c.add(PolicyErrorCode.SCHEMA_TYPE, path, `expected a list, found ${kindOf(v)}`);
    return undefined;
  }
  if (v.length > max) {
    c.add(PolicyErrorCode.LIMIT_EXCEEDED, path, `at most ${max} entries, found ${v.length}`);
    return undefined;
  }
  return v;
}

/** A list of strings, each checked; invalid entries are reported and dropped. */
export function strings(
  c: Collector,
  v: unknown,
  path: PathSegment[],
  max: number,
  check?: { pattern: RegExp; expect: string },
): string[] {
  if (v === undefined) return [];
  const items = list(c, v, path, max) ?? [];
  const out: string[] = [];
  items.forEach((item, i) => {
    const s = str(c, item, [...path, i], check);
    if (s !== undefined) out.push(s);
  });
  return out;
}

/** Reports a second use of a name in one namespace. */
export function uniqueNames(c: Collector, names: { name: string; path: PathSegment[] }[], what: string): void {
  const seen = new Set<string>();
  for (const n of names) {
    if (seen.has(n.name)) c.add(PolicyErrorCode.DUPLICATE_NAME, n.path, `duplicate ${what} name '${n.name}'`);
    seen.add(n.name);
  }
}
