import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);

/** A library whose code shapes the compiler's output, as an SBOM lists it. */
export interface ToolchainPackage {
  /** npm name, e.g. `@bufbuild/cel`. */
  name: string;
  version: string;
  /** What it does in a compile. */
  role: string;
}

/**
 * The package.json of an installed dependency. Some packages (@bufbuild/cel) do not export
 * `./package.json`, so the file is found by walking up from the resolved entry point.
 */
function installedVersion(name: string): string {
  let dir = dirname(require.resolve(name));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === name && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // no package.json at this level: keep walking up
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find the installed version of ${name}`);
    dir = parent;
  }
}

let cached: ToolchainPackage[] | undefined;

/**
 * The compiler and every library that decides what bytes a compile produces: the YAML parser
 * (what the source says), the CEL parser (what each condition means) and wabt (the binary
 * encoding). Read from the installed packages, so the SBOM names what actually ran.
 */
export function compilerToolchain(): ToolchainPackage[] {
  cached ??= [
    { name: '@apx/policy', version: (require('../package.json') as { version: string }).version, role: 'compiler' },
    { name: 'yaml', version: installedVersion('yaml'), role: 'policy source parser' },
    { name: '@bufbuild/cel', version: installedVersion('@bufbuild/cel'), role: 'CEL condition parser' },
    { name: 'wabt', version: installedVersion('wabt'), role: 'WebAssembly text to binary' },
  ];
  return cached.map((p) => ({ ...p }));
}
