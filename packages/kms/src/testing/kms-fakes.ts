// Test support: local servers speaking the real wire protocols of Vault transit (HTTP/JSON)
// and AWS KMS (AWS JSON 1.1), holding real keys in memory, so the official clients and
// APX's signers can be driven end to end without any cloud.
import { generateKeyPairSync, type KeyObject, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { p256 } from '@noble/curves/p256';

async function body(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function listen(server: Server): Promise<string> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve(`127.0.0.1:${(server.address() as AddressInfo).port}`)),
  );
}

interface FakeKey {
  privateKey: KeyObject;
  publicPem: string;
}

/** Vault's transit engine: keys/<name> (create, read) and sign/<name> (prehashed ECDSA). */
export class FakeVault {
  readonly keys = new Map<string, FakeKey>();
  readonly token = 'test-vault-token';
  requests: string[] = [];
  private readonly server: Server;
  address = '';

  private constructor() {
    this.server = createServer((req, res) => void this.handle(req, res));
  }

  static async start(): Promise<FakeVault> {
    const vault = new FakeVault();
    vault.address = `http://${await listen(vault.server)}`;
    return vault;
  }

  addKey(name: string): void {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.keys.set(name, { privateKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }) as string });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const send = (status: number, json: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(json));
    };
    this.requests.push(`${req.method} ${req.url}`);
    if (req.headers['x-vault-token'] !== this.token) return send(403, { errors: ['permission denied'] });
    const m = /^\/v1\/transit\/(keys|sign)\/([^/]+)(?:\/[\w-]+)?$/.exec(req.url ?? '');
    if (!m) return send(404, { errors: ['no handler for route'] });
    const name = decodeURIComponent(m[2] as string);
    const input = req.method === 'POST' ? (JSON.parse((await body(req)).toString() || '{}') as Record<string, unknown>) : {};
    if (m[1] === 'keys' && req.method === 'POST') {
      if (input.type !== 'ecdsa-p256') return send(400, { errors: ['this fake creates ecdsa-p256 keys only'] });
      if (!this.keys.has(name)) this.addKey(name); // Vault keeps an existing key
      return send(204, {});
    }
    const key = this.keys.get(name);
    if (!key) return send(404, { errors: [`key not found: ${name}`] });
    if (m[1] === 'keys')
      return send(200, { data: { type: 'ecdsa-p256', latest_version: 1, keys: { '1': { public_key: key.publicPem } } } });
    if (input.prehashed !== true || input.hash_algorithm !== 'sha2-256' || input.marshaling_algorithm !== 'asn1') {
      return send(400, { errors: ['expected a prehashed sha2-256 input with asn1 marshaling'] });
    }
    // Sign the given digest as-is: ECDSA over a digest is what prehashed means.
    const digest = Buffer.from(String(input.input), 'base64');
    const der = signDigest(digest, key.privateKey);
    return send(200, { data: { signature: `vault:v1:${der.toString('base64')}`, key_version: 1 } });
  }

  close(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }
}

/** AWS KMS over AWS JSON 1.1 (X-Amz-Target: TrentService.*): CreateKey, CreateAlias, DescribeKey, GetPublicKey and Sign (digest). */
export class FakeAwsKms {
  readonly keys = new Map<string, FakeKey & { keyId: string }>();
  endpoint = '';
  private readonly server: Server;

  private constructor() {
    this.server = createServer((req, res) => void this.handle(req, res));
  }

  static async start(): Promise<FakeAwsKms> {
    const kms = new FakeAwsKms();
    kms.endpoint = await listen(kms.server);
    return kms;
  }

  /** Adds a P-256 key under an id (and alias/NAME). */
  addKey(keyId: string, alias?: string): void {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const key = { keyId, privateKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }) as string };
    this.keys.set(keyId, key);
    if (alias) this.keys.set(`alias/${alias}`, key);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const send = (status: number, json: unknown) => {
      res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1' });
      res.end(JSON.stringify(json));
    };
    const target = String(req.headers['x-amz-target'] ?? '');
    if (!String(req.headers.authorization ?? '').startsWith('AWS4-HMAC-SHA256 ')) {
      return send(400, { __type: 'MissingAuthenticationTokenException', message: 'request is not signed' });
    }
    const input = JSON.parse((await body(req)).toString() || '{}') as Record<string, unknown>;
    if (target === 'TrentService.CreateKey') {
      if (input.KeySpec !== 'ECC_NIST_P256' || input.KeyUsage !== 'SIGN_VERIFY') {
        return send(400, { __type: 'ValidationException', message: 'this fake creates ECC_NIST_P256 SIGN_VERIFY keys only' });
      }
      const keyId = randomUUID();
      this.addKey(keyId);
      return send(200, { KeyMetadata: this.metadata(keyId) });
    }
    if (target === 'TrentService.CreateAlias') {
      const aliasName = String(input.AliasName);
      const aliased = this.keys.get(String(input.TargetKeyId));
      if (!aliased)
        return send(400, { __type: 'NotFoundException', message: `Key '${String(input.TargetKeyId)}' does not exist` });
      if (this.keys.has(aliasName))
        return send(400, { __type: 'AlreadyExistsException', message: `${aliasName} already exists` });
      this.keys.set(aliasName, aliased);
      return send(200, {});
    }
    const key = this.keys.get(String(input.KeyId));
    if (!key) return send(400, { __type: 'NotFoundException', message: `Key '${String(input.KeyId)}' does not exist` });
    const der = createPublicKeyDer(key.publicPem);
    if (target === 'TrentService.DescribeKey') return send(200, { KeyMetadata: this.metadata(key.keyId) });
    if (target === 'TrentService.GetPublicKey') {
      return send(200, {
        KeyId: key.keyId,
        PublicKey: der.toString('base64'),
        KeySpec: 'ECC_NIST_P256',
        KeyUsage: 'SIGN_VERIFY',
        SigningAlgorithms: ['ECDSA_SHA_256'],
      });
    }
    if (target === 'TrentService.Sign') {
      if (input.MessageType !== 'DIGEST' || input.SigningAlgorithm !== 'ECDSA_SHA_256') {
        return send(400, { __type: 'ValidationException', message: 'expected an ECDSA_SHA_256 DIGEST' });
      }
      const signature = signDigest(Buffer.from(String(input.Message), 'base64'), key.privateKey);
      return send(200, { KeyId: key.keyId, Signature: signature.toString('base64'), SigningAlgorithm: 'ECDSA_SHA_256' });
    }
    return send(400, { __type: 'UnknownOperationException', message: target });
  }

  private metadata(keyId: string): Record<string, unknown> {
    return {
      KeyId: keyId,
      Arn: `arn:aws:kms:us-east-1:111122223333:key/${keyId}`,
      KeySpec: 'ECC_NIST_P256',
      KeyUsage: 'SIGN_VERIFY',
      KeyState: 'Enabled',
      Enabled: true,
    };
  }

  close(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }
}

function createPublicKeyDer(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
}

/** ECDSA P-256 over a digest as given (a real KMS signs digests; Node cannot, @noble/curves can). */
function signDigest(digest: Buffer, key: KeyObject): Buffer {
  const d = Buffer.from(key.export({ format: 'jwk' }).d as string, 'base64url');
  return Buffer.from(p256.sign(digest, d, { prehash: false, lowS: false }).toDERRawBytes());
}
