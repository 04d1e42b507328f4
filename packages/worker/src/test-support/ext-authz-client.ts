// A grpc-js client of envoy.service.auth.v3.Authorization/Check built from the same Envoy
// protos the worker serves, for tests and benchmarks (exported as
// @apx/worker/test-support/ext-authz-client). The e2e tests also drive Check from an
// independent stack (python3-grpcio with protoc-generated messages).
import { credentials, type Client as GrpcClient, loadPackageDefinition, type Metadata, type ServiceError } from '@grpc/grpc-js';
import { loadExtAuthzDefinition } from '../gateway/grpc/protos.js';

export { EXT_AUTHZ_PROTO, envoyProtoDirs, loadExtAuthzDefinition } from '../gateway/grpc/protos.js';

/** Check's answer: the decoded CheckResponse, or the gRPC error status with its trailing metadata. */
export type CheckResult =
  | { ok: true; response: Record<string, unknown> }
  | { ok: false; code: number; details: string; metadata: Record<string, unknown> };

export interface ExtAuthzClient {
  check(request: Record<string, unknown>, timeoutMs?: number): Promise<CheckResult>;
  close(): void;
}

type CheckMethod = (
  request: Record<string, unknown>,
  options: { deadline: number },
  callback: (err: ServiceError | null, response?: Record<string, unknown>) => void,
) => void;

/** A client of Check at `address` (host:port), plaintext. */
export async function extAuthzClient(address: string): Promise<ExtAuthzClient> {
  const pkg = loadPackageDefinition(await loadExtAuthzDefinition()) as unknown as {
    envoy: { service: { auth: { v3: { Authorization: new (address: string, creds: unknown) => GrpcClient } } } };
  };
  const client = new pkg.envoy.service.auth.v3.Authorization(address, credentials.createInsecure());
  const call = (client as unknown as { Check: CheckMethod }).Check.bind(client);
  return {
    check(request, timeoutMs = 10_000) {
      return new Promise((resolve) =>
        call(request, { deadline: Date.now() + timeoutMs }, (err, response) => {
          if (err) {
            resolve({ ok: false, code: err.code, details: err.details, metadata: (err.metadata as Metadata).getMap() });
          } else resolve({ ok: true, response: response as Record<string, unknown> });
        }),
      );
    },
    close: () => client.close(),
  };
}

/** A CheckRequest for an HTTP request as Envoy sends it (headers lowercased, query in the path). */
export function checkRequest(r: {
  method: string;
  host: string;
  path: string;
  headers?: Record<string, string>;
  ip?: string;
  principal?: string;
  policy?: string;
  body?: string;
}): Record<string, unknown> {
  const headers: Record<string, string> = { ':authority': r.host, ':method': r.method, ':path': r.path, ...r.headers };
  return {
    attributes: {
      source: {
        address: { socket_address: { address: r.ip ?? '192.0.2.10', port_value: 51234 } },
        ...(r.principal ? { principal: r.principal } : {}),
      },
      destination: { address: { socket_address: { address: '127.0.0.1', port_value: 8000 } } },
      request: {
        http: {
          id: '1',
          method: r.method,
          headers,
          path: r.path,
          host: r.host,
          scheme: 'http',
          protocol: 'HTTP/1.1',
          size: r.body === undefined ? '-1' : String(Buffer.byteLength(r.body)),
          ...(r.body === undefined ? {} : { body: r.body }),
        },
      },
      context_extensions: r.policy ? { apx_policy: r.policy } : {},
    },
  };
}
