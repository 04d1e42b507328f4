import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { parse as Parse } from '@bufbuild/cel';

const require = createRequire(import.meta.url);

/**
 * @bufbuild/cel's parser. The package index also loads the whole interpreter and its protobuf
 * registry (~60 ms, a sixth of `apx compile`'s budget), and compiling needs only the parser,
 * which the package ships as its own module. Its path is not in the package's export map, so
 * it is resolved beside the index; should a release move it, the index is used instead.
 */
function loadParser(): typeof Parse {
  try {
    const mod = require(join(dirname(require.resolve('@bufbuild/cel')), 'parse.js')) as { parse?: typeof Parse };
    if (typeof mod.parse === 'function') return mod.parse;
  } catch {
    // Fall back to the public entry point below.
  }
  return (require('@bufbuild/cel') as { parse: typeof Parse }).parse;
}

export const parseCel: typeof Parse = loadParser();
