import { createHash } from 'node:crypto';
import { type ArtifactRef, formatArtifactRef, type VerifiedArtifact } from '@apx/core';
import { handedVerdict } from '@apx/core/handoff';
import { DiskCache } from '../cache.js';
import { WorkerError, WorkerErrorCode } from '../error.js';
import type { PolicySet } from '../policy-set.js';
import type { PolicyRuntime, RuntimeFactory } from '../runtime.js';
import type { ArtifactMaterial, ArtifactSource } from '../source.js';
import type { HandedSet } from './protocol.js';

/** Fetched artifacts waiting for their verdict, at most: loads run 4 at a time, so this is ample. */
const PENDING_MAX = 64;

/**
 * The primary's side of the hand-off: it keeps the exact bytes each verified artifact was
 * verified from, so that it can hand them to its serving children.
 *
 * A VerifiedArtifact holds a compiled Module, not bytes, and a Module cannot cross a process
 * boundary. So the primary's store and disk cache are read through this tap, which remembers
 * the last artifact bytes read for each reference; when the loader instantiates what it
 * verified (the runtime factory, right after verification, one load per reference at a time)
 * the bytes are taken, checked against the verified digest and size, and tied to that
 * VerifiedArtifact for as long as it lives. The primary never decides: its "runtime" refuses.
 */
export class HandOff {
  readonly #pending = new Map<string, Uint8Array>();
  readonly #bytes = new WeakMap<VerifiedArtifact, Uint8Array>();

  #record(ref: ArtifactRef | string, material: ArtifactMaterial | undefined): ArtifactMaterial | undefined {
    if (!material) return material;
    const key = typeof ref === 'string' ? ref : formatArtifactRef(ref);
    this.#pending.delete(key);
    this.#pending.set(key, material.artifact);
    while (this.#pending.size > PENDING_MAX) this.#pending.delete(this.#pending.keys().next().value as string);
    return material;
  }

  /** The store, read through the tap. */
  wrapSource(source: ArtifactSource): ArtifactSource {
    return {
      get url() {
        return source.url;
      },
      fetch: async (ref, options) => this.#record(ref, await source.fetch(ref, options)),
      versions: (policyId) => source.versions(policyId),
      listing: (options) => source.listing(options),
      getObject: (name, maxBytes) => source.getObject(name, maxBytes),
    };
  }

  /** The disk cache (APX_CACHE_DIR), read through the tap. */
  diskCache(dir: string): DiskCache {
    const tap = (ref: string, m: ArtifactMaterial | undefined) => this.#record(ref, m);
    return new (class extends DiskCache {
      override async read(...args: Parameters<DiskCache['read']>): Promise<ArtifactMaterial | undefined> {
        return tap(args[0], await super.read(...args));
      }
    })(dir);
  }

  /** The primary's runtime factory: binds the verified bytes to the artifact; deciding is the children's. */
  readonly runtimeFactory: RuntimeFactory = (artifact) => {
    const key = formatArtifactRef(artifact.ref);
    const bytes = this.#pending.get(key);
    this.#pending.delete(key);
    const digest = bytes ? `sha256:${createHash('sha256').update(bytes).digest('hex')}` : undefined;
    if (!bytes || digest !== artifact.digest || bytes.byteLength !== artifact.size) {
      throw new WorkerError(
        WorkerErrorCode.INSTANTIATION_FAILED,
        `cannot hand ${key} to the serving processes: the bytes read are not the bytes verified`,
        { hint: 'the store changed during the load; the worker retries' },
      );
    }
    this.#bytes.set(artifact, bytes);
    const runtime: PolicyRuntime = {
      jwt: artifact.tables.jwt,
      decide() {
        throw new Error('the primary of a multi-process worker does not decide; its serving processes do');
      },
    };
    return runtime;
  };

  /** The set the children serve, as the primary's policy set stands now (with every serving artifact's bytes). */
  snapshot(policies: PolicySet, generation: number): HandedSet {
    const readiness = policies.readiness();
    return {
      generation,
      discovering: policies.discovering,
      readiness: readiness.reason === undefined ? { ready: readiness.ready } : readiness,
      policies: policies.list().map((s) => {
        const bytes = s.current ? this.#bytes.get(s.current.artifact) : undefined;
        return {
          policyId: s.policyId,
          current:
            s.current && bytes
              ? { refText: s.current.refText, handed: { bytes, verdict: handedVerdict(s.current.artifact) } }
              : undefined,
          refused: s.refused,
          lastError: s.lastError?.message,
        };
      }),
    };
  }
}

/** policy id → serving digest: two sets with the same map serve the same bytes. */
export function servingDigests(set: HandedSet): Map<string, string> {
  const out = new Map<string, string>();
  for (const p of set.policies) if (p.current) out.set(p.policyId, p.current.handed.verdict.digest);
  return out;
}

/** A comparable text of a set without its generation (same text: nothing to tell the children). */
export function fingerprint(set: HandedSet): string {
  return JSON.stringify([
    set.discovering,
    set.readiness,
    set.policies.map((p) => [p.policyId, p.current?.refText, p.current?.handed.verdict.digest, p.refused, p.lastError]),
  ]);
}
