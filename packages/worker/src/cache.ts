import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { AttestationKind, VerifiedArtifact } from '@apx/core';
import { LocalStore } from '@apx/storage';
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
  /** A local artifact store does the file work: capped reads, atomic writes. */
  private readonly files: LocalStore;

  constructor(dir: string) {
    this.dir = dir;
    this.files = new LocalStore({ root: dir });
  }

  /** The entry of `ref` with the attestations asked for (those the trust in force requires). */
  async read(ref: string, attestations: readonly AttestationKind[] = []): Promise<ArtifactMaterial | undefined> {
    try {
      const digest = (await this.files.get(`refs/${ref}`, { maxBytes: 1024 }))?.toString('utf8').trim() ?? '';
      const hex = digest.replace(/^sha256:/, '');
      if (!/^[0-9a-f]{64}$/.test(hex)) return undefined;
      const blob = `blobs/${hex}.wasm`;
      // The index is written last: every file it points at is complete, so all are read at once.
      const [artifact, signature, bundle, ...attested] = await Promise.all([
        this.files.get(blob),
        this.files.get(`${blob}.sig`, { maxBytes: 64 * 1024 }),
        this.files.get(`${blob}.sigstore.json`, { maxBytes: 1024 * 1024 }),
        ...attestations.map((kind) => this.files.get(`${blob}.${kind}.sigstore.json`, { maxBytes: 1024 * 1024 })),
      ]);
      if (!artifact) return undefined;
      const material: ArtifactMaterial = { artifact, signature, bundle };
      attestations.forEach((kind, i) => {
        material[kind] = attested[i];
      });
      return material;
    } catch {
      return undefined; // an unreadable entry is a cache miss, never an error
    }
  }

  async write(ref: string, digest: string, material: ArtifactMaterial): Promise<void> {
    const hex = digest.replace(/^sha256:/, '');
    await this.files.put(`blobs/${hex}.wasm`, material.artifact);
    if (material.signature) await this.files.put(`blobs/${hex}.wasm.sig`, material.signature);
    if (material.bundle) await this.files.put(`blobs/${hex}.wasm.sigstore.json`, material.bundle);
    if (material.sbom) await this.files.put(`blobs/${hex}.wasm.sbom.sigstore.json`, material.sbom);
    if (material.provenance) await this.files.put(`blobs/${hex}.wasm.provenance.sigstore.json`, material.provenance);
    await this.files.put(`refs/${ref}`, Buffer.from(digest)); // last: the index never points at a partial entry
  }

  async remove(ref: string): Promise<void> {
    await rm(join(this.dir, 'refs', ref), { force: true });
  }
}
