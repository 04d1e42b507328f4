#!/usr/bin/env node
// npm run pack:cli: packs the installable `apx` command as apx-<version>.tgz.
//
// The workspace packages are private and their @apx scope is not ours on the public registry,
// so the tarball must never ask a registry for an @apx/* package. They are bundled instead: a
// staging directory (outside the repository) holds the CLI's compiled code and a package.json
// named `apx` whose bundleDependencies lists the @apx/* packages the CLI needs, each copied into
// the staging directory's node_modules with only its runtime JavaScript and a trimmed
// package.json. Their public dependencies are declared at the top (npm installs them beside the
// bundle, where the bundled packages resolve them); the cloud SDKs and pkcs11js stay optional
// peers, loaded only when a scheme that needs them is used. Tests, test support, fixtures, type
// declarations and source maps are not copied, and every relative import of the copied code is
// checked to point at a copied file.
//
//   node scripts/pack-cli.mjs [--out DIR] [--json]
//
// Expects a build (npm run build; `npm run pack:cli` builds first). Writes DIR/apx-<version>.tgz
// (DIR defaults to the repository root) and prints its path, size and file count (--json: one
// JSON document with the file list too).
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';

const REPO = resolve(import.meta.dirname, '..');
const CLI = '@apx/cli';
/** The name the tarball installs as (and names the file: apx-<version>.tgz). */
const PACKAGE_NAME = 'apx';

/** Directories of compiled code that no runtime module imports: tests and what only tests use. */
const EXCLUDED_DIRS = new Set(['e2e', 'testing', 'test-support', 'fixtures', '__fixtures__']);

function fail(message) {
  console.error(`pack-cli: ${message}`);
  process.exit(1);
}

function parseArgs(argv) {
  const options = { out: REPO, json: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--json') options.json = true;
    else if (arg === '--out') {
      const value = argv[++i];
      if (!value) fail('--out needs a directory');
      options.out = resolve(value);
    } else if (arg.startsWith('--out=')) options.out = resolve(arg.slice('--out='.length));
    else fail(`unknown argument ${arg} (usage: node scripts/pack-cli.mjs [--out DIR] [--json])`);
  }
  return options;
}

const readJson = (file) => JSON.parse(readFileSync(file, 'utf8'));

/** The workspace packages by name: their directory and package.json. */
function workspacePackages() {
  const root = readJson(join(REPO, 'package.json'));
  const packages = new Map();
  for (const dir of root.workspaces) {
    const pkg = readJson(join(REPO, dir, 'package.json'));
    packages.set(pkg.name, { dir: join(REPO, dir), pkg });
  }
  return packages;
}

const isInternal = (name) => name.startsWith('@apx/');

/** The @apx/* packages the CLI needs at run time (its dependencies, transitively). */
function internalClosure(packages) {
  const seen = new Set();
  const visit = (name) => {
    for (const dep of Object.keys(packages.get(name).pkg.dependencies ?? {})) {
      if (!isInternal(dep) || seen.has(dep)) continue;
      if (!packages.has(dep)) fail(`${name} depends on ${dep}, which is not a workspace package`);
      seen.add(dep);
      visit(dep);
    }
  };
  visit(CLI);
  return [...seen].sort();
}

/** A shipped file: runtime JavaScript outside the test directories, and not a test. */
function shipped(relPath) {
  const parts = relPath.split(/[\\/]/);
  if (parts.slice(0, -1).some((p) => EXCLUDED_DIRS.has(p))) return false;
  const name = parts[parts.length - 1];
  return name.endsWith('.js') && !/\.test\.js$/.test(name);
}

/** Copies dist/ of `from` into `to`, runtime files only; returns the copied paths (relative to dist). */
function copyDist(from, to) {
  const dist = join(from, 'dist');
  if (!existsSync(dist)) fail(`${relative(REPO, dist)} is missing: run npm run build first`);
  const copied = [];
  const walk = (dir) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      const rel = relative(dist, path);
      if (statSync(path).isDirectory()) {
        if (!EXCLUDED_DIRS.has(name)) walk(path);
      } else if (shipped(rel)) {
        mkdirSync(dirname(join(to, 'dist', rel)), { recursive: true });
        cpSync(path, join(to, 'dist', rel));
        copied.push(rel);
      }
    }
  };
  walk(dist);
  return copied;
}

/**
 * The package's exports, reduced to what ships: entries whose JavaScript is not copied (the
 * testing helpers) are dropped, and type conditions go (no declarations ship).
 */
function shippedExports(exports, copied) {
  if (exports === undefined) return undefined;
  const kept = {};
  for (const [subpath, target] of Object.entries(exports)) {
    const file = typeof target === 'string' ? target : target.default;
    if (typeof file !== 'string' || !file.startsWith('./dist/')) continue;
    const rel = file.slice('./dist/'.length);
    if (rel.includes('*') ? shipped(rel.replace('*', 'x')) && copied.length > 0 : copied.includes(rel)) kept[subpath] = file;
  }
  return kept;
}

/**
 * The fields a bundled package keeps: what Node needs to load it. Its dependencies are not
 * declared here but by the bundling `apx` package: npm takes every dependency of a bundled
 * package for part of the bundle and would not install it (it would leave it empty).
 * Installed beside the bundle, in apx/node_modules, they resolve the same way.
 */
function trimmedManifest(pkg, copied) {
  const manifest = {
    name: pkg.name,
    version: pkg.version,
    description: pkg.description,
    license: pkg.license,
    type: pkg.type,
    engines: pkg.engines,
    exports: shippedExports(pkg.exports, copied),
  };
  return Object.fromEntries(Object.entries(manifest).filter(([, v]) => v !== undefined));
}

/**
 * Public dependencies of the CLI and its bundled packages, merged. Two packages asking for the
 * same dependency with different ranges would need npm to nest one copy inside the bundle,
 * which it does not do for bundled packages: refused, so the ranges get aligned instead.
 */
function mergeDependencies(manifests, field) {
  const merged = {};
  const from = {};
  for (const pkg of manifests) {
    for (const [name, range] of Object.entries(pkg[field] ?? {})) {
      if (isInternal(name)) continue;
      if (merged[name] !== undefined && merged[name] !== range) {
        fail(`${field}: ${from[name]} wants ${name}@${merged[name]} but ${pkg.name} wants ${name}@${range}; align the ranges`);
      }
      merged[name] = range;
      from[name] = pkg.name;
    }
  }
  return Object.fromEntries(Object.entries(merged).sort(([a], [b]) => a.localeCompare(b)));
}

/** Relative specifiers (`./x.js`, `../y.js`) in static and dynamic imports and require calls. */
function relativeImports(source) {
  const found = [];
  const re = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|\brequire\s*\(\s*)(['"])(\.\.?\/[^'"]+)\1/g;
  for (let m = re.exec(source); m !== null; m = re.exec(source)) found.push(m[2]);
  return found;
}

/** Every relative import of the staged code must name a staged file (so nothing imports a test helper). */
function checkImports(stage) {
  const walk = (dir) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith('.js')) {
        for (const spec of relativeImports(readFileSync(path, 'utf8'))) {
          const target = resolve(dirname(path), spec);
          if (!existsSync(target)) fail(`${relative(stage, path)} imports ${spec}, which is not packed`);
        }
      }
    }
  };
  walk(join(stage, 'dist'));
  walk(join(stage, 'node_modules'));
}

function main() {
  const options = parseArgs(process.argv.slice(2));
  const packages = workspacePackages();
  const cli = packages.get(CLI);
  if (!cli) fail(`no workspace package named ${CLI}`);
  const internal = internalClosure(packages);

  const stage = mkdtempSync(join(tmpdir(), 'apx-pack-'));
  try {
    cpSync(join(cli.dir, 'bin'), join(stage, 'bin'), { recursive: true });
    copyDist(cli.dir, stage);
    const bundled = [];
    for (const name of internal) {
      const { dir, pkg } = packages.get(name);
      const to = join(stage, 'node_modules', ...name.split('/'));
      const copied = copyDist(dir, to);
      const manifest = trimmedManifest(pkg, copied);
      writeFileSync(join(to, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
      bundled.push(manifest);
    }
    const all = [cli.pkg, ...internal.map((name) => packages.get(name).pkg)];
    const peerDependencies = mergeDependencies(all, 'peerDependencies');
    const manifest = {
      name: PACKAGE_NAME,
      version: cli.pkg.version,
      description: cli.pkg.description,
      license: cli.pkg.license,
      type: cli.pkg.type,
      engines: cli.pkg.engines,
      bin: { apx: 'bin/apx.js' },
      files: ['bin', 'dist'],
      dependencies: {
        ...Object.fromEntries(bundled.map((p) => [p.name, p.version])),
        ...mergeDependencies(all, 'dependencies'),
      },
      bundleDependencies: bundled.map((p) => p.name),
      peerDependencies,
      // Every peer is optional: the cloud SDKs and pkcs11js load only when their scheme is used,
      // and the error then names the package to install.
      peerDependenciesMeta: Object.fromEntries(Object.keys(peerDependencies).map((n) => [n, { optional: true }])),
    };
    writeFileSync(join(stage, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    const license = join(REPO, 'LICENSE');
    if (existsSync(license)) cpSync(license, join(stage, 'LICENSE'));
    checkImports(stage);

    mkdirSync(options.out, { recursive: true });
    const npm = spawnSync('npm', ['pack', '--json', '--pack-destination', options.out], {
      cwd: stage,
      encoding: 'utf8',
      // The staged package has no scripts; nothing from the calling npm run leaks in.
      env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_(package|lifecycle)_/i.test(k))),
    });
    if (npm.status !== 0) fail(`npm pack failed:\n${npm.stderr}`);
    const [result] = JSON.parse(npm.stdout);
    const tarball = join(options.out, result.filename);
    const summary = {
      tarball,
      name: result.name,
      version: result.version,
      size: result.size,
      unpackedSize: result.unpackedSize,
      entryCount: result.entryCount,
      bundled: result.bundled,
      files: result.files.map((f) => f.path),
    };
    if (options.json) console.log(JSON.stringify(summary, null, 2));
    else {
      // As npm must read it: a path (./apx-x.tgz), never a bare name it could look up.
      const shown = relative(process.cwd(), tarball);
      const path = shown.startsWith('.') ? shown : shown.startsWith('/') || shown === '' ? tarball : `./${shown}`;
      console.log(path);
      console.log(
        `  ${result.entryCount} files, ${(result.size / 1024).toFixed(0)} kB packed (${(result.unpackedSize / 1024).toFixed(0)} kB unpacked), bundles ${result.bundled.join(', ')}`,
      );
      console.log(`  install: npm install -g ${path}`);
    }
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

main();
