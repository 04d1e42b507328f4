import {
  type Document,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  parseAllDocuments,
  visit,
  type YAMLMap,
  type YAMLSeq,
} from 'yaml';
import type { StringifyContext } from 'yaml/util';
import { PolicyError, PolicyErrorCode, type Problem } from './error.js';
import { POLICY_JSON_SCHEMA } from './json-schema.js';
import { MAX_SOURCE_BYTES } from './source.js';

type Schema = { [key: string]: unknown };

const defs = POLICY_JSON_SCHEMA.$defs as Record<string, Schema>;

function resolve(schema: Schema | undefined): Schema | undefined {
  if (!schema) return undefined;
  const ref = schema.$ref;
  if (typeof ref === 'string' && ref.startsWith('#/$defs/')) return resolve(defs[ref.slice('#/$defs/'.length)]);
  return schema;
}

/**
 * Puts the pairs of every mapping the schema knows in the schema's property order (the order
 * docs/policy-language.md documents), recursively. Keys the schema does not know keep their
 * relative order after the known ones (the compiler reports them; fmt does not drop text).
 * Comments and blank lines belong to the pair they precede, so they move with it.
 */
function reorder(node: unknown, schema: Schema | undefined, place: 'top' | 'value' | 'item'): void {
  const s = resolve(schema);
  if (!s) return;
  if (isMap(node)) {
    const properties = s.properties as Record<string, Schema> | undefined;
    if (properties) {
      const order = Object.keys(properties);
      const rank = (key: unknown): number => {
        const i = isScalar(key) ? order.indexOf(String(key.value)) : -1;
        return i === -1 ? order.length : i;
      };
      const first = node.items[0]?.key;
      // A mapping under a key holds its first pair's leading comment itself: give it to that
      // pair, so the comment moves with it. (Under `- `, the comment is the item's: it stays.)
      if (place === 'value' && node.commentBefore && isScalar(first)) {
        first.commentBefore = first.commentBefore ? `${node.commentBefore}\n${first.commentBefore}` : node.commentBefore;
        if (node.spaceBefore) first.spaceBefore = true;
        node.commentBefore = null;
        node.spaceBefore = false;
      }
      const ranked = node.items.map((pair, i) => ({ pair, i, r: rank(pair.key) }));
      ranked.sort((a, b) => a.r - b.r || a.i - b.i);
      node.items = ranked.map((x) => x.pair);
      // The comment at the top of the file describes the file: it stays at the top. No blank
      // line opens a mapping.
      const now = node.items[0]?.key;
      if (isScalar(now)) now.spaceBefore = false;
      if (place === 'top' && isScalar(first) && isScalar(now) && now !== first && first.commentBefore) {
        now.commentBefore = now.commentBefore ? `${first.commentBefore}\n${now.commentBefore}` : first.commentBefore;
        first.commentBefore = null;
      }
      for (const pair of node.items) {
        if (!isPair(pair) || !isScalar(pair.key)) continue;
        reorder(pair.value, properties[String(pair.key.value)], 'value');
      }
    }
    return;
  }
  if (isSeq(node)) {
    const items = s.items as Schema | undefined;
    for (const item of node.items) reorder(item, items, 'item');
  }
}

/**
 * Flow mappings are written `{ a: 1 }`, flow sequences `[a, b]` (the layout of the
 * repository's formatter for YAML, so the two agree). The yaml library pads both or neither;
 * each flow collection's rendering context is set here.
 */
function padFlowMaps(doc: Document.Parsed): void {
  visit(doc, {
    Map(_, node) {
      if (node.flow) withPadding(node, ' ');
    },
    Seq(_, node) {
      if (node.flow) withPadding(node, '');
    },
  });
}

function withPadding(node: YAMLMap | YAMLSeq, padding: string): void {
  const render = node.toString.bind(node);
  node.toString = (ctx?: StringifyContext, onComment?: () => void, onChompKeep?: () => void) =>
    ctx ? render({ ...ctx, flowCollectionPadding: padding }, onComment, onChompKeep) : render();
}

/** YAML rendering options of the canonical form. */
const RENDER = { indent: 2, indentSeq: true, lineWidth: 0, minContentWidth: 0, flowCollectionPadding: false } as const;

/**
 * The canonical text of an apx/v1 policy source: mapping keys in the documented order,
 * 2-space indentation, no line folding, a final newline. Comments, quoting, flow or block
 * style and blank lines are kept; so is the meaning (the canonical JSON and the digest the
 * compiler records do not change). Formatting the result again gives the same bytes.
 * Throws PolicyError when the text is not one strict YAML document.
 */
export function formatPolicySource(text: string, file: string): string {
  const problem = (message: string, code: PolicyErrorCode, line = 1, column = 1): PolicyError =>
    new PolicyError(file, [{ code, path: '', message, line, column } satisfies Problem]);
  if (Buffer.byteLength(text, 'utf8') > MAX_SOURCE_BYTES)
    throw problem(`policy source larger than ${MAX_SOURCE_BYTES} bytes`, PolicyErrorCode.SOURCE_TOO_LARGE);
  const lc = new LineCounter();
  const docs = parseAllDocuments(text, {
    lineCounter: lc,
    uniqueKeys: true,
    strict: true,
    prettyErrors: false,
    keepSourceTokens: false,
  });
  if (!Array.isArray(docs) || docs.length === 0) throw problem('empty document', PolicyErrorCode.YAML_SYNTAX);
  if (docs.length > 1)
    throw problem('one policy per file: found more than one YAML document', PolicyErrorCode.YAML_MULTIPLE_DOCUMENTS);
  const doc = docs[0] as Document.Parsed;
  const error = doc.errors[0];
  if (error) {
    const { line, col } = lc.linePos(error.pos[0]);
    const message = (error.message.split('\n')[0] ?? error.message).replace(/ at line \d+, column \d+:?$/, '');
    throw problem(message, PolicyErrorCode.YAML_SYNTAX, line, col);
  }
  reorder(doc.contents, POLICY_JSON_SCHEMA, 'top');
  padFlowMaps(doc);
  const out = doc.toString(RENDER);
  return out.endsWith('\n') ? out : `${out}\n`;
}
