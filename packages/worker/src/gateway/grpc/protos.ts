// The official Envoy API protos (envoyproxy/data-plane-api, with cncf/xds, googleapis and
// protoc-gen-validate) as @grpc/grpc-js-xds publishes them: the one maintained npm package
// that ships envoy/service/auth/v3/external_auth.proto with everything it imports. Only its
// .proto files are read; none of its code is loaded.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { PackageDefinition } from '@grpc/proto-loader';

export const EXT_AUTHZ_PROTO = 'envoy/service/auth/v3/external_auth.proto';
export const AUTHORIZATION_SERVICE = 'envoy.service.auth.v3.Authorization';

/** The include directories holding the Envoy protos and their imports (for proto-loader or protoc). */
export function envoyProtoDirs(): string[] {
  const root = dirname(createRequire(import.meta.url).resolve('@grpc/grpc-js-xds/package.json'));
  return ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => join(root, 'deps', d));
}

/** Field names as in the .proto (keepCase), int64 as strings, enums as names, oneofs named. */
export const LOADER_OPTIONS = { keepCase: true, longs: String, enums: String, defaults: false, oneofs: true } as const;

/** external_auth.proto and its imports, parsed (about 0.2 s: done once, when the gRPC port opens). */
export async function loadExtAuthzDefinition(): Promise<PackageDefinition> {
  const { loadSync } = await import('@grpc/proto-loader');
  return loadSync(EXT_AUTHZ_PROTO, { ...LOADER_OPTIONS, includeDirs: envoyProtoDirs() });
}

/** The HTTP statuses envoy.type.v3.StatusCode defines (Envoy refuses a DeniedHttpResponse with another). */
export function definedHttpStatuses(definition: PackageDefinition): ReadonlySet<number> {
  const e = definition['envoy.type.v3.StatusCode'] as { type?: { value?: Array<{ number: number }> } } | undefined;
  return new Set((e?.type?.value ?? []).map((v) => v.number).filter((n) => n > 0));
}
