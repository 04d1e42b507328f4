// Ordinary mistakes the operating system reports (a missing file, a directory where a file
// belongs, a port in use) turned into one clear ApxError that names the path or setting and
// what to do, where the operation happens. Anything else is left alone: the caller rethrows
// it, and it stays a real "unexpected" error. Exported as `@apx/core/os-error`, apart from
// the trust core (it reads the file system to say which part of a path is in the way).
import { statSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { ApxError } from './error.js';

/** The closed set of codes: the ordinary system failures APX explains. */
export const OsErrorCode = {
  /** ENOENT: the file or directory does not exist. */
  NOT_FOUND: 'NOT_FOUND',
  /** EISDIR: a directory where a file is expected. */
  IS_A_DIRECTORY: 'IS_A_DIRECTORY',
  /** ENOTDIR, or EEXIST from mkdir: a file where a directory is expected (the path or a parent). */
  NOT_A_DIRECTORY: 'NOT_A_DIRECTORY',
  /** EACCES, EPERM: not allowed. */
  PERMISSION_DENIED: 'PERMISSION_DENIED',
  /** EROFS: a read-only file system. */
  READ_ONLY: 'READ_ONLY',
  /** ENOSPC, EDQUOT: the disk (or quota) is full. */
  NO_SPACE: 'NO_SPACE',
  /** EADDRINUSE: another process listens on the port. */
  ADDRESS_IN_USE: 'ADDRESS_IN_USE',
  /** EADDRNOTAVAIL: the address is not one of this machine's. */
  ADDRESS_NOT_AVAILABLE: 'ADDRESS_NOT_AVAILABLE',
  /** ENOTFOUND, EAI_AGAIN: the host name does not resolve. */
  HOST_NOT_FOUND: 'HOST_NOT_FOUND',
} as const;
export type OsErrorCode = (typeof OsErrorCode)[keyof typeof OsErrorCode];

export class OsError extends ApxError<OsErrorCode> {
  override readonly name = 'OsError';
}

/** Node's code of a system error (`ENOENT`...), or undefined. */
export function systemErrorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

export interface FileOperation {
  /** What the path is, for the message: "audit log", "key file", "output directory". */
  what: string;
  /** The path as the user wrote it (relative paths stay relative in messages). */
  path: string;
  /** The directory relative paths are resolved against (default: the process's). */
  cwd?: string;
  /** The flag or setting that named the path ("--out", "APX_AUDIT_LOG"), for the hint. */
  setting?: string;
  /** What belongs at the path. */
  expect: 'file' | 'directory';
  /** What was being done. */
  access: 'read' | 'write';
}

/**
 * The clear error for a failed file operation, or undefined when `err` is not an ordinary
 * mistake (the caller rethrows it). Usage: `catch (err) { throw fileError(err, op) ?? err }`.
 */
export function fileError(err: unknown, op: FileOperation): OsError | undefined {
  const code = systemErrorCode(err);
  const where = op.setting ? `set ${op.setting} to` : 'use';
  const subject = `${op.what} ${op.path}`;
  const options = (hint: string) => ({ hint, cause: err });
  switch (code) {
    case 'ENOENT':
      return new OsError(
        OsErrorCode.NOT_FOUND,
        op.access === 'read'
          ? `${op.what} not found: ${op.path}`
          : `cannot write ${subject}: a directory on the way does not exist`,
        options(`${where} an existing ${op.expect === 'file' ? 'file' : 'directory'}`),
      );
    case 'EISDIR':
      return new OsError(
        OsErrorCode.IS_A_DIRECTORY,
        `${subject} is a directory, not a file`,
        options(`${where} a file${op.access === 'write' ? ' path (it is created if missing)' : ''}`),
      );
    case 'ENOTDIR':
    case 'EEXIST': {
      const blocker = fileInTheWay(op);
      if (blocker === undefined && code === 'EEXIST') return undefined;
      const itself = blocker === undefined || blocker.itself;
      return new OsError(
        OsErrorCode.NOT_A_DIRECTORY,
        `${itself ? subject : `${subject}: ${blocker.shown}`} is a file, not a directory`,
        options(
          op.expect === 'directory' && itself
            ? `${where} a directory (it is created if missing), or move the file away`
            : `${where} a path whose parents are directories, or move ${blocker?.shown ?? 'the file'} away`,
        ),
      );
    }
    case 'EACCES':
    case 'EPERM':
      return new OsError(
        OsErrorCode.PERMISSION_DENIED,
        `permission denied: cannot ${op.access} ${subject}`,
        options(
          `give the user running apx ${op.access} access to it${op.setting ? `, or set ${op.setting} to another path` : ''}`,
        ),
      );
    case 'EROFS':
      return new OsError(
        OsErrorCode.READ_ONLY,
        `cannot write ${subject}: the file system is read-only`,
        options(`${where} a path on a writable file system`),
      );
    case 'ENOSPC':
    case 'EDQUOT':
      return new OsError(
        OsErrorCode.NO_SPACE,
        `cannot write ${subject}: no space left on the device`,
        options(`free some space${op.setting ? `, or set ${op.setting} to a path on another disk` : ''}`),
      );
    default:
      return undefined;
  }
}

/**
 * The first part of `op.path` that exists and is not a directory (the path itself when a
 * directory is expected), as the user would write it; undefined when there is none.
 */
function fileInTheWay(op: FileOperation): { shown: string; itself: boolean } | undefined {
  const cwd = op.cwd ?? process.cwd();
  const absolute = resolve(cwd, op.path);
  const chain: string[] = [];
  for (let p = op.expect === 'directory' ? absolute : dirname(absolute); ; p = dirname(p)) {
    chain.unshift(p);
    if (dirname(p) === p) break;
  }
  for (const p of chain) {
    let directory: boolean;
    try {
      directory = statSync(p).isDirectory();
    } catch {
      return undefined;
    }
    if (!directory) return { shown: isAbsolute(op.path) ? p : relative(cwd, p), itself: p === absolute };
  }
  return undefined;
}

export interface ListenOperation {
  host: string;
  port: number;
  /** How the user names the address and port: "--host / APX_HOST", "--port / APX_PORT". */
  hostSetting: string;
  portSetting: string;
}

/** The clear error for a server that cannot listen, or undefined when `err` is not an ordinary mistake. */
export function listenError(err: unknown, op: ListenOperation): OsError | undefined {
  const address = `${op.host.includes(':') ? `[${op.host}]` : op.host}:${op.port}`;
  const hostHint = `set ${op.hostSetting} to an address of this machine: 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)`;
  switch (systemErrorCode(err)) {
    case 'EADDRINUSE':
      return new OsError(OsErrorCode.ADDRESS_IN_USE, `cannot listen on ${address}: the port is already in use`, {
        hint: `stop the other process listening on port ${op.port}, or set ${op.portSetting} to another port (0 picks a free one)`,
        cause: err,
      });
    case 'EADDRNOTAVAIL':
      return new OsError(
        OsErrorCode.ADDRESS_NOT_AVAILABLE,
        `cannot listen on ${address}: ${op.host} is not an address of this machine`,
        { hint: hostHint, cause: err },
      );
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
      return new OsError(OsErrorCode.HOST_NOT_FOUND, `cannot listen on ${address}: host name ${op.host} does not resolve`, {
        hint: hostHint,
        cause: err,
      });
    case 'EACCES':
    case 'EPERM':
      return new OsError(OsErrorCode.PERMISSION_DENIED, `cannot listen on ${address}: permission denied`, {
        hint: `ports below 1024 need privileges: set ${op.portSetting} to a port from 1024 to 65535`,
        cause: err,
      });
    default:
      return undefined;
  }
}
