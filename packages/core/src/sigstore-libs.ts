// The Sigstore libraries (and protobuf-specs under them) load on first use, not when
// @apx/core is imported: `apx --version`, key-file verification of a detached signature and a
// worker's start never need them. They are CommonJS, so a synchronous require keeps every
// caller synchronous; Node caches the module after the first call.
import { createRequire } from 'node:module';

const lazyRequire = createRequire(import.meta.url);

export type SigstoreBundle = typeof import('@sigstore/bundle');
export type SigstoreCore = typeof import('@sigstore/core');
export type ProtobufSpecs = typeof import('@sigstore/protobuf-specs');

/** @sigstore/bundle: bundle validation and (de)serialization; requires protobuf-specs. */
export const sigstoreBundle = (): SigstoreBundle => lazyRequire('@sigstore/bundle') as SigstoreBundle;
/** @sigstore/core: X.509, ASN.1, DSSE PAE, RFC 3161. */
export const sigstoreCore = (): SigstoreCore => lazyRequire('@sigstore/core') as SigstoreCore;
/** @sigstore/protobuf-specs: the generated message types and enums. */
export const protobufSpecs = (): ProtobufSpecs => lazyRequire('@sigstore/protobuf-specs') as ProtobufSpecs;
