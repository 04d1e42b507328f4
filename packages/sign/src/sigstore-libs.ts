// The Sigstore libraries load on first use, not when @apx/sign is imported: a command that
// only verifies, or signs a detached .sig, must not pay for @sigstore/sign's HTTP stack
// (make-fetch-happen, cacache, socks) nor for protobuf-specs. They are CommonJS, so a
// synchronous require keeps callers synchronous; Node caches the module after the first call.
import { createRequire } from 'node:module';

const lazyRequire = createRequire(import.meta.url);

type SigstoreBundle = typeof import('@sigstore/bundle');
type SigstoreCore = typeof import('@sigstore/core');
type SigstoreSign = typeof import('@sigstore/sign');
type ProtobufSpecs = typeof import('@sigstore/protobuf-specs');

/** @sigstore/bundle: the bundle builders and serialization (with protobuf-specs). */
export const sigstoreBundle = (): SigstoreBundle => lazyRequire('@sigstore/bundle') as SigstoreBundle;
/** @sigstore/core: X.509 and RFC 3161 parsing. */
export const sigstoreCore = (): SigstoreCore => lazyRequire('@sigstore/core') as SigstoreCore;
/** @sigstore/sign: the Fulcio and Rekor clients (keyless signing only). */
export const sigstoreSign = (): SigstoreSign => lazyRequire('@sigstore/sign') as SigstoreSign;
/** @sigstore/protobuf-specs: the enums the bundle builders take. */
export const protobufSpecs = (): ProtobufSpecs => lazyRequire('@sigstore/protobuf-specs') as ProtobufSpecs;
