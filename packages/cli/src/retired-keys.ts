import { stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isKmsRef, redactKeyRef } from '@apx/kms/key-ref';
import { isKeyless, type Signer, writeFileAtomic } from '@apx/sign';
import type { CliContext } from './context.js';
import { CliError, CliErrorCode } from './error.js';
import { readOptional, resolvePath } from './io.js';

/**
 * After a rotation, the key it replaced must not go on signing: workers of that environment
 * refuse what it signs. Two sources say a key is retired for an environment:
 *   - `rotations.json` beside the key files, written by `apx keys rotate --retire` and
 *     `apx trust signer retire|remove`: which key was retired, when, and which key (and key
 *     file) succeeds it;
 *   - the trust repository of the local store ($APX_STORE or ./artifacts, when it is a
 *     directory holding tuf/): a signer key whose validity ended (trust signer retire).
 * Signing an artifact for that environment with a retired key is refused, naming the key to
 * sign with instead.
 */
export const ROTATIONS_FILE = 'rotations.json';

export interface RotationRecord {
  /** The retired key's APX key id (or the 8+ hex digit prefix the user gave). */
  keyId: string;
  environment: string;
  retiredAt: string;
  /** The key that replaces it, when the rotation made or named one. */
  successor?: { keyId: string; key: string };
}

interface RotationsFile {
  rotations: RotationRecord[];
}

async function readRotations(ctx: CliContext, path: string): Promise<RotationRecord[]> {
  const bytes = await readOptional(ctx, path, 'rotation record', 'remove it, or fix its JSON');
  if (!bytes) return [];
  try {
    const parsed = JSON.parse(bytes.toString('utf8')) as Partial<RotationsFile>;
    return Array.isArray(parsed.rotations) ? parsed.rotations.filter((r) => typeof r?.keyId === 'string') : [];
  } catch {
    return [];
  }
}

/** Appends a rotation to `<dir>/rotations.json` (dir: where the new key files are; default keys/). */
export async function recordRotation(ctx: CliContext, dir: string, record: RotationRecord): Promise<void> {
  const path = join(dir, ROTATIONS_FILE);
  const rotations = await readRotations(ctx, path);
  rotations.push(record);
  await writeFileAtomic(resolvePath(ctx, path), `${JSON.stringify({ rotations }, null, 2)}\n`, {
    overwrite: true,
    describe: { what: 'rotation record', path, cwd: ctx.cwd },
  });
}

/** Refuses to sign for `environment` with a key retired for it (see the module comment). */
export async function refuseRetiredKey(ctx: CliContext, signer: Signer, environment: string): Promise<void> {
  if (isKeyless(signer)) return;
  const keyId = (await signer.publicKey()).keyId;
  const keyName = redactKeyRef(signer.keyRef);
  const dirs = new Set(['keys']);
  const keyFile = !signer.keyRef.startsWith('env://') && !isKmsRef(signer.keyRef);
  if (keyFile) dirs.add(dirname(signer.keyRef));
  for (const dir of dirs) {
    const rotations = await readRotations(ctx, join(dir, ROTATIONS_FILE));
    const retired = rotations
      .filter((r) => r.environment === environment && keyId.startsWith(r.keyId) && Date.parse(r.retiredAt) <= Date.now())
      .pop();
    if (retired) throw retiredError(keyName, keyId, environment, retired.retiredAt, successorOf(rotations, retired));
  }
  const fromTrust = await retiredInTrustRepository(ctx, keyId, environment);
  if (fromTrust) {
    const rotations = await readRotations(ctx, join(keyFile ? dirname(signer.keyRef) : 'keys', ROTATIONS_FILE));
    const named = rotations.find((r) => r.successor && fromTrust.successors.some((id) => id === r.successor?.keyId));
    const successor = named?.successor ?? (fromTrust.successors[0] ? { keyId: fromTrust.successors[0], key: '' } : undefined);
    throw retiredError(keyName, keyId, environment, fromTrust.notAfter, successor);
  }
}

/** The latest successor of a retired key, following chains (A → B → C gives C when B is retired too). */
function successorOf(rotations: RotationRecord[], record: RotationRecord): RotationRecord['successor'] {
  let successor = record.successor;
  for (let hops = 0; successor && hops < rotations.length; hops++) {
    const id = successor.keyId;
    const next = rotations.filter((r) => r.environment === record.environment && id.startsWith(r.keyId)).pop();
    if (!next?.successor) break;
    successor = next.successor;
  }
  return successor;
}

function retiredError(
  keyName: string,
  keyId: string,
  environment: string,
  retiredAt: string,
  successor: RotationRecord['successor'],
): CliError {
  const next = successor
    ? `sign with ${successor.keyId}${successor.key ? ` (${successor.key}): --key ${successor.key}` : ''}`
    : `sign with the key that replaced it (apx trust status --env ${environment} lists the trusted keys)`;
  return new CliError(
    CliErrorCode.KEY_RETIRED,
    `refusing to sign for ${environment} with ${keyName} (key id ${keyId.slice(0, 12)}): the key you gave was retired at ${retiredAt}`,
    { hint: `${next}; ${environment} workers refuse what a retired key signs` },
  );
}

/**
 * A key whose validity ended in the local store's trust repository, with the keys still valid
 * for the environment. Undefined when there is no local trust repository or it cannot be read
 * (the worker judges it; this is a courtesy to the signer, not a security boundary).
 */
async function retiredInTrustRepository(
  ctx: CliContext,
  keyId: string,
  environment: string,
): Promise<{ notAfter: string; successors: string[] } | undefined> {
  const url = ctx.env.APX_STORE || './artifacts';
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url) && !url.startsWith('file://')) return undefined;
  try {
    // Most signers have no local trust repository: look for its directory (where the store
    // would find it) before loading the store and TUF code.
    const dir = url.startsWith('file://') ? fileURLToPath(url) : resolve(ctx.cwd, url);
    if (!(await isDirectory(join(dir, 'tuf')))) return undefined;
    const { openStore } = await import('@apx/storage');
    const store = await openStore(url, { cwd: ctx.cwd, env: ctx.env });
    const root = (store as { root?: string }).root;
    if (!root || !(await isDirectory(join(root, 'tuf')))) return undefined;
    const { TrustRepository, readEnvironmentCustom } = await import('@apx/trust');
    const repo = await TrustRepository.open(store);
    const md = repo.state.environments.get(environment);
    if (!md) return undefined;
    const { signers } = readEnvironmentCustom(environment, md.signed as Parameters<typeof readEnvironmentCustom>[1]);
    const now = Date.now();
    const mine = signers.find((s) => s.keyId === keyId);
    if (!mine?.notAfter || Date.parse(mine.notAfter) > now) return undefined;
    const successors = signers.filter((s) => !s.notAfter || Date.parse(s.notAfter) > now).map((s) => s.keyId);
    return { notAfter: mine.notAfter, successors };
  } catch {
    return undefined;
  }
}

async function isDirectory(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isDirectory() ?? false;
}
