// The cloud SDKs are optional and heavy: using the local store must not load them. A child
// process runs with a module hook that refuses any module under @google-cloud/ or @aws-sdk/
// (ESM resolution and CommonJS require alike), as if they were not installed; the s3:// and
// gs:// runs prove the hook catches them, and show the error a missing optional SDK gives.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { tempDir } from '@apx/core/testing/hygiene';

const INDEX = pathToFileURL(join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, 'index.js')).href;
const FORBIDDEN = String.raw`/node_modules\/(@google-cloud|@aws-sdk)\//`;

const HOOKS = `export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  if (${FORBIDDEN}.test(r.url)) throw Object.assign(new Error('FORBIDDEN MODULE ' + r.url), { code: 'ERR_MODULE_NOT_FOUND' });
  return r;
}`;
const GUARD = `
import Module, { register } from 'node:module';
register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(HOOKS)}));
const original = Module._resolveFilename;
Module._resolveFilename = function (...args) {
  const file = original.apply(this, args);
  if (${FORBIDDEN}.test(file)) throw Object.assign(new Error('FORBIDDEN MODULE ' + file), { code: 'MODULE_NOT_FOUND' });
  return file;
};`;

function run(scheme: 'file' | 's3' | 'gs') {
  const dir = tempDir('apx-lazy-');
  const program = `
import { openStore, publishArtifact, fetchArtifact } from ${JSON.stringify(INDEX)};
const store = await openStore(${JSON.stringify(dir)});
await publishArtifact(store, { ref: 'p@1.0.0', artifact: Buffer.from('\\0asm'), signature: Buffer.from('c2ln') });
if (!(await fetchArtifact(store, 'p@1.0.0'))?.signature) throw new Error('no signature');
try {
  if (${JSON.stringify(scheme)} === 's3') await openStore('s3://bucket/p?endpoint=http://127.0.0.1:9');
  if (${JSON.stringify(scheme)} === 'gs') await openStore('gs://bucket/p?endpoint=http://127.0.0.1:9');
} catch (err) {
  console.log(err.code, err.message, '|', err.hint, '|', err.cause?.message);
  process.exit(3);
}
console.log('done');`;
  return spawnSync(
    process.execPath,
    ['--import', `data:text/javascript,${encodeURIComponent(GUARD)}`, '--input-type=module', '-e', program],
    {
      encoding: 'utf8',
    },
  );
}

it('importing @apx/storage and using the local store loads neither @google-cloud/* nor @aws-sdk/*', () => {
  const r = run('file');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'done');
});

it('(control) opening s3:// or gs:// does load the SDK; a missing SDK is BACKEND_UNAVAILABLE with the install command', () => {
  const expected = {
    s3: /^BACKEND_UNAVAILABLE store s3:\/\/bucket\/p\S* needs @aws-sdk\/client-s3@3, which is not installed \| npm install @aws-sdk\/client-s3@3 \| FORBIDDEN MODULE .*@aws-sdk/,
    gs: /^BACKEND_UNAVAILABLE store gs:\/\/bucket\/p\S* needs @google-cloud\/storage@7, which is not installed \| npm install @google-cloud\/storage@7 \| FORBIDDEN MODULE .*@google-cloud/,
  };
  for (const scheme of ['s3', 'gs'] as const) {
    const r = run(scheme);
    assert.equal(r.status, 3, r.stderr);
    assert.match(r.stdout, expected[scheme]);
  }
});
