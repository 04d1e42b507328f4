// A local stand-in for Secret Manager that speaks the real wire protocol: a gRPC server
// (@grpc/grpc-js) serving google.cloud.secretmanager.v1.SecretManagerService from the .proto
// files shipped in @google-cloud/secret-manager (and google-gax's common protos), on
// 127.0.0.1 without TLS. The official client reaches it the way it reaches an emulator:
// apiEndpoint + port + insecure sslCreds, which also takes Google's auth out of the path.
// Only AccessSecretVersion is implemented; other methods answer UNIMPLEMENTED.
import { createRequire } from 'node:module';
import { dirname, join, sep } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { crc32c, type SecretManagerClientOptions } from '../secret-manager.js';

function protoDirs(): string[] {
  const require = createRequire(import.meta.url);
  const sdkDir = dirname(require.resolve('@google-cloud/secret-manager/package.json'));
  // google-gax exports no package.json: find its root from its main file.
  const gaxMain = createRequire(join(sdkDir, 'package.json')).resolve('google-gax');
  const gaxDir = gaxMain.slice(0, gaxMain.lastIndexOf(`${sep}build${sep}`));
  return [join(sdkDir, 'build', 'protos'), join(gaxDir, 'build', 'protos')];
}

interface ServiceTree {
  google: { cloud: { secretmanager: { v1: { SecretManagerService: { service: grpc.ServiceDefinition } } } } };
}

type Unary = grpc.handleUnaryCall<{ name: string }, unknown>;

/** One scripted failure for a secret (`projects/P/secrets/S`): a gRPC status and its details. */
export interface ScriptedFailure {
  code: grpc.status;
  details: string;
}

export class FakeSecretManager {
  /** Versions of each secret (`projects/P/secrets/S`), oldest first: version n is `versions/n`. */
  readonly secrets = new Map<string, Buffer[]>();
  /** Secrets that answer with an error instead (PERMISSION_DENIED, UNAVAILABLE...). */
  readonly failures = new Map<string, ScriptedFailure>();
  /** Every name asked for, in order. */
  readonly requests: string[] = [];
  /** Answer with a wrong dataCrc32c (data corrupted in transit). */
  corruptChecksum = false;
  /** Never answer (the client's deadline must fire). */
  hang = false;
  readonly port: number;
  private readonly server: grpc.Server;

  private constructor(server: grpc.Server, port: number) {
    this.server = server;
    this.port = port;
  }

  static async start(): Promise<FakeSecretManager> {
    const definition = protoLoader.loadSync('google/cloud/secretmanager/v1/service.proto', {
      includeDirs: protoDirs(),
      longs: String,
      defaults: true,
    });
    const tree = grpc.loadPackageDefinition(definition) as unknown as ServiceTree;
    const server = new grpc.Server();
    let fake: FakeSecretManager | undefined;
    const accessSecretVersion: Unary = (call, callback) => {
      if (!fake) return callback({ code: grpc.status.UNAVAILABLE, details: 'starting' });
      fake.access(call, callback);
    };
    server.addService(tree.google.cloud.secretmanager.v1.SecretManagerService.service, { accessSecretVersion });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    fake = new FakeSecretManager(server, port);
    return fake;
  }

  /** Adds a version to a secret and returns its full name. */
  addVersion(secret: string, data: string | Buffer): string {
    const versions = this.secrets.get(secret) ?? [];
    versions.push(Buffer.from(data));
    this.secrets.set(secret, versions);
    return `${secret}/versions/${versions.length}`;
  }

  /** Options for the official client: this server, no TLS, no Google auth. */
  clientOptions(): SecretManagerClientOptions {
    return {
      apiEndpoint: '127.0.0.1',
      port: this.port,
      sslCreds: grpc.credentials.createInsecure(),
      // Known up front, so the client never asks credentials or a metadata server for it.
      universeDomain: 'googleapis.com',
    };
  }

  async stop(): Promise<void> {
    this.server.forceShutdown();
  }

  private access(call: grpc.ServerUnaryCall<{ name: string }, unknown>, callback: grpc.sendUnaryData<unknown>): void {
    const name = call.request.name;
    this.requests.push(name);
    if (this.hang) return; // forceShutdown at stop() ends the call
    const answer = this.answer(name);
    if ('code' in answer) callback(answer);
    else callback(null, answer);
  }

  /** What Secret Manager answers for `name`: the AccessSecretVersionResponse or an error status. */
  private answer(name: string): ScriptedFailure | { name: string; payload: { data: Buffer; dataCrc32c: string } } {
    const match = /^(projects\/[^/]+\/secrets\/[^/]+)\/versions\/([^/]+)$/.exec(name);
    if (!match) return { code: grpc.status.INVALID_ARGUMENT, details: 'Invalid resource field value in the request.' };
    const [, secret = '', version = ''] = match;
    const failure = this.failures.get(secret);
    if (failure) return failure;
    const versions = this.secrets.get(secret);
    if (!versions || versions.length === 0) {
      return { code: grpc.status.NOT_FOUND, details: `Secret [${secret}] not found or has no versions.` };
    }
    const n = version === 'latest' ? versions.length : Number(version);
    const data = Number.isInteger(n) && n >= 1 ? versions[n - 1] : undefined;
    if (!data) return { code: grpc.status.NOT_FOUND, details: `Secret Version [${name}] not found.` };
    const checksum = crc32c(data) + (this.corruptChecksum ? 1 : 0);
    return { name: `${secret}/versions/${n}`, payload: { data, dataCrc32c: String(checksum) } };
  }
}

/** The message Secret Manager sends when IAM refuses the caller. */
export function permissionDenied(secret: string): ScriptedFailure {
  return {
    code: grpc.status.PERMISSION_DENIED,
    details: `Permission 'secretmanager.versions.access' denied for resource '${secret}/versions/latest' (or it may not exist).`,
  };
}

export { grpc };
