import { type Document, isAlias, isMap, isNode, isScalar, isSeq, LineCounter, type Node, parseAllDocuments, visit } from 'yaml';
import { PolicyErrorCode, type Problem } from './error.js';

/** Policies are small; anything bigger is a mistake or an attack on the parser. */
export const MAX_SOURCE_BYTES = 1024 * 1024;

export type PathSegment = string | number;

/** A parsed YAML source with what is needed to point at any value by its path. */
export interface ParsedSource {
  value: unknown;
  /** 1-based line and column of the value at `path` (of its key with `atKey`), or of its nearest parent. */
  locate(path: readonly PathSegment[], atKey?: boolean): { line: number; column: number; offset: number };
}

export function renderPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : out === '' ? seg : `.${seg}`;
  return out;
}

function position(lc: LineCounter, offset: number): { line: number; column: number; offset: number } {
  const { line, col } = lc.linePos(offset);
  return { line, column: col, offset };
}

/**
 * Strict YAML: one document, no duplicate keys, no aliases (anchors make reviews lie and
 * enable billion-laughs expansion), bounded size. Returns the value or every problem.
 */
export function parseYaml(text: string): { source: ParsedSource } | { problems: Problem[] } {
  const problems: Problem[] = [];
  if (Buffer.byteLength(text, 'utf8') > MAX_SOURCE_BYTES) {
    return {
      problems: [
        {
          code: PolicyErrorCode.SOURCE_TOO_LARGE,
          path: '',
          message: `policy source larger than ${MAX_SOURCE_BYTES} bytes`,
          line: 1,
          column: 1,
        },
      ],
    };
  }
  const lc = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lc, uniqueKeys: true, strict: true, prettyErrors: false });
  if (!Array.isArray(docs))
    return { problems: [{ code: PolicyErrorCode.YAML_SYNTAX, path: '', message: 'empty document', line: 1, column: 1 }] };
  if (docs.length !== 1) {
    const at = docs[1]?.range[0] ?? 0;
    return {
      problems: [
        {
          code: docs.length === 0 ? PolicyErrorCode.YAML_SYNTAX : PolicyErrorCode.YAML_MULTIPLE_DOCUMENTS,
          path: '',
          message: docs.length === 0 ? 'empty document' : 'one policy per file: found more than one YAML document',
          ...position(lc, at),
        },
      ],
    };
  }
  const doc = docs[0] as Document.Parsed;
  for (const e of doc.errors) {
    const code = e.code === 'DUPLICATE_KEY' ? PolicyErrorCode.YAML_DUPLICATE_KEY : PolicyErrorCode.YAML_SYNTAX;
    const message = e.message.split('\n')[0] ?? e.message;
    problems.push({ code, path: '', message: message.replace(/ at line \d+, column \d+:?$/, ''), ...position(lc, e.pos[0]) });
  }
  visit(doc, {
    Alias(_, node) {
      problems.push({
        code: PolicyErrorCode.YAML_ALIAS,
        path: '',
        message: `YAML aliases are not allowed (*${node.source}); repeat the value`,
        ...position(lc, node.range?.[0] ?? 0),
      });
    },
  });
  if (problems.length > 0) return { problems };

  const locate = (path: readonly PathSegment[], atKey = false) => {
    let node: unknown = doc.contents;
    let offset = (doc.contents as Node | null)?.range?.[0] ?? 0;
    for (let i = 0; i < path.length; i++) {
      const seg = path[i];
      const last = i === path.length - 1;
      let next: unknown;
      if (isMap(node) && typeof seg === 'string') {
        const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === seg);
        if (!pair) break;
        if (last && atKey && isNode(pair.key)) {
          offset = pair.key.range?.[0] ?? offset;
          break;
        }
        next = pair.value;
      } else if (isSeq(node) && typeof seg === 'number') {
        next = node.items[seg];
      }
      if (!isNode(next) || isAlias(next)) break;
      node = next;
      offset = next.range?.[0] ?? offset;
    }
    return position(lc, offset);
  };
  return { source: { value: doc.toJS({ maxAliasCount: 0 }), locate } };
}
