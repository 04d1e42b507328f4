import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { VerifiedArtifact } from '@apx/core';
import type { ArtifactMaterial } from './source.js';

/**
 * Verified artifacts in memory, keyed by digest, bounded (least recently used goes first),
 * with an index from reference to digest for the runbook's first step, "check cache".
 */
export class MemoryCache<T extends { artifact: VerifiedArtifact }> {
  private readonly byDigest = new Map<string, T>();
  private readonly refToDigest = new Map<string, string>();
  private readonly capacity: number;

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  get(ref: string): T | undefined {
    const digest = this.refToDigest.get(ref);
    if (digest === undefined) return undefined;
    const entry = this.byDigest.get(digest);
    if (!entry) return undefined;
    this.byDigest.delete(digest); // refresh recency
    this.byDigest.set(digest, entry);
    return entry;
  }

  set(ref: string, entry: T): void {
    const digest = entry.artifact.digest;
    this.byDigest.delete(digest);
    this.byDigest.set(digest, entry);
    this.refToDigest.set(ref, digest);
    while (this.byDigest.size > this.capacity) {
      const oldest = this.byDigest.keys().next().value as string;
      this.byDigest.delete(oldest);
      for (const [r, d] of this.refToDigest) if (d === oldest) this.refToDigest.delete(r);
    }
  }

  /** Drops every reference to a digest (revoked or blocked). */
  forgetDigest(digest: string): void {
    this.byDigest.delete(digest);
    for (const [r, d] of this.refToDigest) if (d === digest) this.refToDigest.delete(r);
  }

  get size(): number {
    return this.byDigest.size;
  }
}

/**
 * Artifacts on disk (APX_CACHE_DIR) so a restarted worker can serve while the store is
 * unreachable. Nothing read from here is trusted: the loader re-verifies every entry
 * exactly as if it had just been downloaded. Writes are atomic (temp file + rename).
 */
export class DiskCache {
  private readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  private refPath(ref: string): string {
    return join(this.dir, 'refs', ref);
  }

  private blobPath(hex: string, suffix: string): string {
    return join(this.dir, 'blobs', `${hex}${suffix}`);
  }

  async read(ref: string): Promise<ArtifactMaterial | undefined> {
    try {
      const digest = (await readFile(this.refPath(ref), 'utf8')).trim();
      const hex = digest.replace(/^sha256:/, '');
      if (!/^[0-9a-f]{64}$/.test(hex)) return undefined;
      const optional = (suffix: string) => readFile(this.blobPath(hex, suffix)).catch(() => undefined);
      return {
        artifact: await readFile(this.blobPath(hex, '.wasm')),
        signature: await optional('.wasm.sig'),
        bundle: await optional('.wasm.sigstore.json'),
      };
    } catch {
      return undefined;
    }
  }

  async write(ref: string, digest: string, material: ArtifactMaterial): Promise<void> {
    const hex = digest.replace(/^sha256:/, '');
    await this.put(this.blobPath(hex, '.wasm'), material.artifact);
    if (material.signature) await this.put(this.blobPath(hex, '.wasm.sig'), material.signature);
    if (material.bundle) await this.put(this.blobPath(hex, '.wasm.sigstore.json'), material.bundle);
    await this.put(this.refPath(ref), digest); // last: the index never points at a partial entry
  }

  /** Highest verified version per policy, kept across restarts (rollback protection). */
  async readHighest(): Promise<Record<string, string>> {
    try {
      const parsed = JSON.parse(await readFile(join(this.dir, 'state', 'highest.json'), 'utf8')) as unknown;
      if (typeof parsed !== 'object' || parsed === null) return {};
      return Object.fromEntries(Object.entries(parsed).filter((e): e is [string, string] => typeof e[1] === 'string'));
    } catch {
      return {};
    }
  }

  async writeHighest(highest: Record<string, string>): Promise<void> {
    await this.put(join(this.dir, 'state', 'highest.json'), JSON.stringify(highest));
  }

  async remove(ref: string): Promise<void> {
    await rm(this.refPath(ref), { force: true });
  }

  private async put(path: string, data: string | Buffer): Promise<void> {
    await mkdir(join(path, '..'), { recursive: true });
    const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await writeFile(temp, data);
      await rename(temp, path);
    } finally {
      await rm(temp, { force: true });
    }
  }
}
