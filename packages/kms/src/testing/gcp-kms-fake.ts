// Test support: Google Cloud KMS over its real wire protocol, gRPC, from the .proto files the
// official client ships; keys held in memory; reached like an emulator (insecure, no auth).

import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createRequire } from 'node:module';
import { dirname, join, sep } from 'node:path';
import { crc32c } from '@apx/core';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { p256 } from '@noble/curves/p256';

function protoDirs(): string[] {
  const require = createRequire(import.meta.url);
  const sdkDir = dirname(require.resolve('@google-cloud/kms/package.json'));
  const gaxMain = createRequire(join(sdkDir, 'package.json')).resolve('google-gax');
  const gaxDir = gaxMain.slice(0, gaxMain.lastIndexOf(`${sep}build${sep}`));
  return [join(sdkDir, 'build', 'protos'), join(gaxDir, 'build', 'protos')];
}

interface Version {
  privateKey: KeyObject;
  pem: string;
}

export class FakeGcpKms {
  /** cryptoKey name → its versions (version n is cryptoKeyVersions/n). */
  readonly keys = new Map<string, Version[]>();
  /** cryptoKey names that answer PERMISSION_DENIED. */
  readonly denied = new Set<string>();
  /** Key ring names (addVersion adds its key's ring). */
  readonly keyRings = new Set<string>();
  readonly port: number;
  private readonly server: grpc.Server;

  private constructor(server: grpc.Server, port: number) {
    this.server = server;
    this.port = port;
  }

  static async start(): Promise<FakeGcpKms> {
    const definition = protoLoader.loadSync('google/cloud/kms/v1/service.proto', {
      includeDirs: protoDirs(),
      longs: String,
      enums: String,
      defaults: true,
    });
    const tree = grpc.loadPackageDefinition(definition) as unknown as {
      google: { cloud: { kms: { v1: { KeyManagementService: { service: grpc.ServiceDefinition } } } } };
    };
    const server = new grpc.Server();
    let fake: FakeGcpKms | undefined;
    const find = (name: string): { key: string; version: Version | undefined; versions: Version[] | undefined } => {
      const key = name.replace(/\/cryptoKeyVersions\/\d+$/, '');
      const n = Number(/\/cryptoKeyVersions\/(\d+)$/.exec(name)?.[1] ?? 0);
      const versions = fake?.keys.get(key);
      return { key, version: versions?.[n - 1], versions };
    };
    const guard = (name: string, callback: grpc.sendUnaryData<unknown>): boolean => {
      const { key, versions } = find(name);
      if (fake?.denied.has(key)) {
        callback({
          code: grpc.status.PERMISSION_DENIED,
          details: `Permission 'cloudkms.cryptoKeyVersions.useToSign' denied on resource '${key}' (or it may not exist).`,
        });
        return false;
      }
      if (!versions) {
        callback({ code: grpc.status.NOT_FOUND, details: `${key} not found.` });
        return false;
      }
      return true;
    };
    const handlers = {
      getKeyRing: (call: grpc.ServerUnaryCall<{ name: string }, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        if (!fake?.keyRings.has(call.request.name)) {
          return callback({ code: grpc.status.NOT_FOUND, details: `KeyRing ${call.request.name} not found.` });
        }
        callback(null, { name: call.request.name });
      },
      createKeyRing: (
        call: grpc.ServerUnaryCall<{ parent: string; keyRingId: string }, unknown>,
        callback: grpc.sendUnaryData<unknown>,
      ) => {
        const name = `${call.request.parent}/keyRings/${call.request.keyRingId}`;
        if (fake?.keyRings.has(name))
          return callback({ code: grpc.status.ALREADY_EXISTS, details: `KeyRing ${name} already exists.` });
        fake?.keyRings.add(name);
        callback(null, { name });
      },
      createCryptoKey: (
        call: grpc.ServerUnaryCall<
          { parent: string; cryptoKeyId: string; cryptoKey: { purpose: string; versionTemplate?: { algorithm: string } } },
          unknown
        >,
        callback: grpc.sendUnaryData<unknown>,
      ) => {
        const { parent, cryptoKeyId, cryptoKey } = call.request;
        const name = `${parent}/cryptoKeys/${cryptoKeyId}`;
        if (!fake?.keyRings.has(parent))
          return callback({ code: grpc.status.NOT_FOUND, details: `KeyRing ${parent} not found.` });
        if (fake.keys.has(name))
          return callback({ code: grpc.status.ALREADY_EXISTS, details: `CryptoKey ${name} already exists.` });
        if (cryptoKey.purpose !== 'ASYMMETRIC_SIGN' || cryptoKey.versionTemplate?.algorithm !== 'EC_SIGN_P256_SHA256') {
          return callback({
            code: grpc.status.INVALID_ARGUMENT,
            details: 'this fake creates EC_SIGN_P256_SHA256 signing keys only',
          });
        }
        fake.addVersion(name);
        callback(null, { name, purpose: cryptoKey.purpose, versionTemplate: cryptoKey.versionTemplate });
      },
      createCryptoKeyVersion: (
        call: grpc.ServerUnaryCall<{ parent: string }, unknown>,
        callback: grpc.sendUnaryData<unknown>,
      ) => {
        if (!guard(call.request.parent, callback)) return;
        const name = fake?.addVersion(call.request.parent);
        callback(null, { name, state: 'ENABLED', algorithm: 'EC_SIGN_P256_SHA256' });
      },
      listCryptoKeyVersions: (call: grpc.ServerUnaryCall<{ parent: string }, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        if (!guard(call.request.parent, callback)) return;
        const versions = find(call.request.parent).versions ?? [];
        callback(null, {
          cryptoKeyVersions: versions.map((_, i) => ({
            name: `${call.request.parent}/cryptoKeyVersions/${i + 1}`,
            state: 'ENABLED',
          })),
          totalSize: versions.length,
        });
      },
      getPublicKey: (call: grpc.ServerUnaryCall<{ name: string }, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        if (!guard(call.request.name, callback)) return;
        const { version } = find(call.request.name);
        if (!version) return callback({ code: grpc.status.NOT_FOUND, details: `${call.request.name} not found.` });
        callback(null, {
          pem: version.pem,
          algorithm: 'EC_SIGN_P256_SHA256',
          pemCrc32c: { value: String(crc32c(Buffer.from(version.pem))) },
          name: call.request.name,
        });
      },
      asymmetricSign: (
        call: grpc.ServerUnaryCall<{ name: string; digest: { sha256?: Buffer }; digestCrc32c?: { value: string } }, unknown>,
        callback: grpc.sendUnaryData<unknown>,
      ) => {
        if (!guard(call.request.name, callback)) return;
        const { version } = find(call.request.name);
        const digest = call.request.digest?.sha256;
        if (!version || !digest)
          return callback({ code: grpc.status.INVALID_ARGUMENT, details: 'a SHA-256 digest of an existing version is required' });
        const intact = call.request.digestCrc32c ? String(call.request.digestCrc32c.value) === String(crc32c(digest)) : false;
        const d = Buffer.from(version.privateKey.export({ format: 'jwk' }).d as string, 'base64url');
        const signature = Buffer.from(p256.sign(digest, d, { prehash: false, lowS: false }).toDERRawBytes());
        callback(null, {
          signature,
          signatureCrc32c: { value: String(crc32c(signature)) },
          verifiedDigestCrc32c: intact,
          name: call.request.name,
        });
      },
    };
    server.addService(
      tree.google.cloud.kms.v1.KeyManagementService.service,
      handlers as unknown as grpc.UntypedServiceImplementation,
    );
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    fake = new FakeGcpKms(server, port);
    return fake;
  }

  /** Adds a P-256 version to a crypto key; returns the version's name. */
  addVersion(cryptoKey: string): string {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const versions = this.keys.get(cryptoKey) ?? [];
    versions.push({ privateKey, pem: publicKey.export({ type: 'spki', format: 'pem' }) as string });
    this.keyRings.add(cryptoKey.replace(/\/cryptoKeys\/[^/]+$/, ''));
    this.keys.set(cryptoKey, versions);
    return `${cryptoKey}/cryptoKeyVersions/${versions.length}`;
  }

  /** Options for the official client: this server, no TLS, no Google auth. */
  clientOptions(): Record<string, unknown> {
    return {
      apiEndpoint: '127.0.0.1',
      port: this.port,
      sslCreds: grpc.credentials.createInsecure(),
      universeDomain: 'googleapis.com',
    };
  }

  stop(): void {
    this.server.forceShutdown();
  }
}
