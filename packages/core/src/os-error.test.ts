import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { appendFile, mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileError, listenError, OsErrorCode } from './os-error.js';

const dir = mkdtempSync(join(tmpdir(), 'apx-os-error-'));
after(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, 'a-file'), 'x');
mkdirSync(join(dir, 'a-dir'));

/** The error `fn` fails with (the real one from Node, not a hand-made code). */
async function failure(fn: () => unknown): Promise<unknown> {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  assert.fail('expected a failure');
}

describe('fileError: ordinary file mistakes as one clear error', () => {
  it('a file where a directory belongs, itself or on the way (mkdir: EEXIST, ENOTDIR)', async () => {
    const op = { what: 'output directory', cwd: dir, setting: '--out', expect: 'directory', access: 'write' } as const;
    const itself = fileError(await failure(() => mkdir(join(dir, 'a-file'), { recursive: true })), { ...op, path: 'a-file' });
    assert.equal(itself?.code, OsErrorCode.NOT_A_DIRECTORY);
    assert.equal(itself?.message, 'output directory a-file is a file, not a directory');
    assert.equal(itself?.hint, 'set --out to a directory (it is created if missing), or move the file away');
    const under = fileError(await failure(() => mkdir(join(dir, 'a-file/sub/deeper'), { recursive: true })), {
      ...op,
      path: 'a-file/sub/deeper',
    });
    assert.equal(under?.message, 'output directory a-file/sub/deeper: a-file is a file, not a directory');
    assert.match(under?.hint ?? '', /move a-file away/);
  });

  it('a directory where a file belongs (EISDIR), named with its setting', async () => {
    const err = await failure(() => appendFile(join(dir, 'a-dir'), 'line\n'));
    const clear = fileError(err, { what: 'audit log', path: 'a-dir', setting: 'APX_AUDIT_LOG', expect: 'file', access: 'write' });
    assert.equal(clear?.code, OsErrorCode.IS_A_DIRECTORY);
    assert.equal(clear?.message, 'audit log a-dir is a directory, not a file');
    assert.equal(clear?.hint, 'set APX_AUDIT_LOG to a file path (it is created if missing)');
    assert.equal(clear?.cause, err);
  });

  it('a missing file to read (ENOENT)', async () => {
    const err = await failure(() => readFileSync(join(dir, 'missing.key')));
    assert.equal(
      fileError(err, { what: 'key file', path: 'missing.key', setting: '--key', expect: 'file', access: 'read' })?.message,
      'key file not found: missing.key',
    );
  });

  it('permissions, read-only and full disks, by code', () => {
    const op = { what: 'audit log', path: 'audit.log', setting: 'APX_AUDIT_LOG', expect: 'file', access: 'write' } as const;
    const as = (code: string) => Object.assign(new Error(code), { code });
    assert.equal(fileError(as('EACCES'), op)?.message, 'permission denied: cannot write audit log audit.log');
    assert.equal(fileError(as('EPERM'), op)?.code, OsErrorCode.PERMISSION_DENIED);
    assert.equal(fileError(as('EROFS'), op)?.message, 'cannot write audit log audit.log: the file system is read-only');
    assert.equal(fileError(as('ENOSPC'), op)?.message, 'cannot write audit log audit.log: no space left on the device');
  });

  it('leaves everything else alone (a real bug stays unexpected)', () => {
    const op = { what: 'file', path: 'x', expect: 'file', access: 'write' } as const;
    assert.equal(fileError(new TypeError('bug'), op), undefined);
    assert.equal(fileError(Object.assign(new Error('EIO'), { code: 'EIO' }), op), undefined);
    // EEXIST with nothing in the way (an exclusive create of an existing file) is the caller's.
    assert.equal(
      fileError(Object.assign(new Error('EEXIST'), { code: 'EEXIST' }), { ...op, cwd: dir, path: 'a-file' }),
      undefined,
    );
  });
});

describe('listenError: a server that cannot listen', () => {
  const op = { hostSetting: '--host / APX_HOST', portSetting: '--port / APX_PORT' };

  it('the port is in use (EADDRINUSE)', async () => {
    const first = createServer();
    await new Promise<void>((resolve) => first.listen(0, '127.0.0.1', resolve));
    const port = (first.address() as { port: number }).port;
    try {
      const second = createServer();
      const err = await new Promise<unknown>((resolve) => {
        second.once('error', resolve);
        second.listen(port, '127.0.0.1');
      });
      const clear = listenError(err, { ...op, host: '127.0.0.1', port });
      assert.equal(clear?.code, OsErrorCode.ADDRESS_IN_USE);
      assert.equal(clear?.message, `cannot listen on 127.0.0.1:${port}: the port is already in use`);
      assert.match(clear?.hint ?? '', /set --port \/ APX_PORT to another port \(0 picks a free one\)$/);
    } finally {
      await new Promise<void>((resolve) => first.close(() => resolve()));
    }
  });

  it('an address that is not this machine, a host that does not resolve', () => {
    const as = (code: string) => Object.assign(new Error(code), { code });
    assert.equal(
      listenError(as('EADDRNOTAVAIL'), { ...op, host: '192.0.2.1', port: 80 })?.message,
      'cannot listen on 192.0.2.1:80: 192.0.2.1 is not an address of this machine',
    );
    assert.equal(listenError(as('ENOTFOUND'), { ...op, host: 'nowhere.invalid', port: 0 })?.code, OsErrorCode.HOST_NOT_FOUND);
    assert.equal(
      listenError(as('EADDRINUSE'), { ...op, host: '::1', port: 8080 })?.message.startsWith('cannot listen on [::1]:8080'),
      true,
    );
    assert.equal(listenError(new Error('bug'), { ...op, host: '::1', port: 1 }), undefined);
  });
});
