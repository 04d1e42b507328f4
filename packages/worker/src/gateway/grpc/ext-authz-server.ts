// Envoy's external authorization service, envoy.service.auth.v3.Authorization/Check, over
// grpc-js. The worker imports this module only when APX_GRPC_PORT is set, so the gRPC stack
// and the Envoy protos load only for workers that serve it.

import { listenError } from '@apx/core/os-error';
import {
  Metadata as GrpcMetadata,
  logVerbosity,
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type ServiceDefinition,
  type sendUnaryData,
  setLogVerbosity,
} from '@grpc/grpc-js';
import {
  type DecisionOutcome,
  type DecisionService,
  type GatewayDecision,
  nextDecisionId,
  toGatewayDecision,
} from '../decision-service.js';
import {
  type CheckRequestMessage,
  type CheckResponseMessage,
  checkAnswerFor,
  checkToGatewayRequest,
  GrpcCode,
} from './ext-authz-mapping.js';
import { AUTHORIZATION_SERVICE, definedHttpStatuses, loadExtAuthzDefinition } from './protos.js';

export interface ExtAuthzServerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  decisions: DecisionService;
  /** APX_DEFAULT_POLICY: decides a CheckRequest whose route sets no `apx_policy` (else the only policy served). */
  defaultPolicy?: string;
  /** Told about a failure inside Check (a bug); the call is answered INTERNAL all the same. */
  onInternalError?: (err: Error) => void;
  /** Names of the settings, for the message when the port cannot be bound. */
  settings?: { host: string; port: string };
}

export interface ExtAuthzServer {
  /** The bound port. */
  port: number;
  /** `host:port` as Envoy's cluster would name it. */
  address: string;
  /** Stops taking calls, lets calls in flight finish for up to `graceMs`, then cancels the rest. */
  close(graceMs?: number): Promise<void>;
}

/**
 * The outcome as a gateway decision; a refusal keeps its own status (404 unknown policy, 503
 * not loaded, 400, 500), which gRPC tells apart (NOT_FOUND, UNAVAILABLE...) where HTTP
 * gateways only see a 5xx.
 */
function gatewayDecisionOf(o: DecisionOutcome): GatewayDecision {
  if (o.kind !== 'refused') return toGatewayDecision(o);
  return {
    kind: 'error',
    status: o.status,
    body: JSON.stringify({ error: o.error }),
    headers: {},
    removeHeaders: [],
    responseHeaders: {},
    ...(o.loaded ? { policy: o.loaded.refText, digest: o.loaded.artifact.digest } : {}),
    decisionId: o.decisionId ?? nextDecisionId(),
  };
}

/** grpc-js's own default: GRPC_VERBOSITY, else errors only. */
function configuredVerbosity(): logVerbosity {
  const v = process.env.GRPC_VERBOSITY?.toUpperCase();
  return v === 'DEBUG' || v === 'INFO' || v === 'NONE' ? logVerbosity[v] : logVerbosity.ERROR;
}

const SYSTEM_CODE = /\b(EADDRINUSE|EADDRNOTAVAIL|EACCES|EPERM|ENOTFOUND|EAI_AGAIN|EAI_NONAME)\b/;

/** Serves Check with `decisions` on host:port; rejects with one clear error when the port cannot be bound. */
export async function startExtAuthzServer(options: ExtAuthzServerOptions): Promise<ExtAuthzServer> {
  const definition = await loadExtAuthzDefinition();
  const defined = definedHttpStatuses(definition);
  const answerOptions = { httpStatusDefined: (s: number) => defined.has(s) };
  const { decisions } = options;
  const fail = (callback: sendUnaryData<CheckResponseMessage>, err: unknown) => {
    options.onInternalError?.(err as Error);
    callback({ code: GrpcCode.INTERNAL, details: 'authorization failed inside the APX worker' });
  };

  function check(
    call: ServerUnaryCall<CheckRequestMessage, CheckResponseMessage>,
    callback: sendUnaryData<CheckResponseMessage>,
  ) {
    let mapped: ReturnType<typeof checkToGatewayRequest>;
    try {
      mapped = checkToGatewayRequest(call.request);
    } catch (err) {
      if ((err as Error).name === 'CheckRequestError') {
        callback({ code: GrpcCode.INVALID_ARGUMENT, details: (err as Error).message });
      } else fail(callback, err);
      return;
    }
    try {
      decisions.evaluate(mapped.policy ?? options.defaultPolicy, mapped.request, (o) => {
        try {
          const answer = checkAnswerFor(gatewayDecisionOf(o), answerOptions);
          if (answer.ok) {
            callback(null, answer.response);
            return;
          }
          const metadata = new GrpcMetadata();
          metadata.set('apx-decision-id', answer.decisionId);
          callback({ code: answer.code, details: answer.details, metadata });
        } catch (err) {
          fail(callback, err);
        }
      });
    } catch (err) {
      fail(callback, err);
    }
  }

  const server = new Server();
  server.addService(definition[AUTHORIZATION_SERVICE] as ServiceDefinition, { Check: check });
  const bindHost = options.host.includes(':') ? `[${options.host}]` : options.host;
  // grpc-js prints a failed bind to stderr itself; the worker reports it once, in its own words.
  setLogVerbosity(logVerbosity.NONE);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${bindHost}:${options.port}`, ServerCredentials.createInsecure(), (err, bound) => {
      setLogVerbosity(configuredVerbosity());
      if (!err) return resolve(bound);
      const code = SYSTEM_CODE.exec(err.message)?.[1];
      const settings = options.settings ?? { host: 'host', port: 'port' };
      const clear =
        code === undefined
          ? undefined
          : listenError(Object.assign(new Error(err.message), { code }), {
              host: options.host,
              port: options.port,
              hostSetting: settings.host,
              portSetting: settings.port,
            });
      server.forceShutdown();
      reject(clear ?? err);
    });
  });
  return {
    port,
    address: `${bindHost}:${port}`,
    close(graceMs = 5000) {
      return new Promise<void>((resolve) => {
        const force = setTimeout(() => server.forceShutdown(), graceMs);
        force.unref();
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
    },
  };
}
