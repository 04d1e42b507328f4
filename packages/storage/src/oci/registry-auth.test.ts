// Registry credentials travel only over https, or over plain http to the registry's own
// loopback origin: a token realm on another host or port over http never receives them, and
// neither does the target of a redirect to another origin. A small fake registry on loopback
// (two servers: the registry, and "another host" for realms and redirects) records the
// Authorization header of every request it gets.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { StorageError, StorageErrorCode } from '../error.js';
import { openStore } from '../open.js';
import { OCI_MANIFEST, TITLE, TRUST_LAYER } from './mapping.js';

const USER = 'ci';
const PASSWORD = 'Regi5tryPa55';
const STATIC_TOKEN = 'St4ticT0ken';
const BASIC = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;
const CONTENT = Buffer.from('{"signed":{"_type":"root"}}');
const DIGEST = `sha256:${createHash('sha256').update(CONTENT).digest('hex')}`;

interface Seen {
  path: string;
  authorization: string | undefined;
}

interface Fake {
  url: string;
  seen: Seen[];
  handle: (req: IncomingMessage, res: ServerResponse) => void;
  server: Server;
}

async function fake(): Promise<Fake> {
  const f = {
    seen: [],
    url: '',
    handle: (_req: IncomingMessage, res: ServerResponse) => void res.writeHead(404).end(),
  } as unknown as Fake;
  f.server = createServer((req, res) => {
    f.seen.push({ path: req.url ?? '', authorization: req.headers.authorization });
    f.handle(req, res);
  });
  await new Promise<void>((r) => f.server.listen(0, '127.0.0.1', r));
  f.url = `http://127.0.0.1:${(f.server.address() as AddressInfo).port}`;
  return f;
}

/** The registry's answers for the trust file tuf/1.root.json: its manifest and its one blob. */
function serveTrustFile(req: IncomingMessage, res: ServerResponse, blob: (res: ServerResponse) => void): void {
  const path = (req.url ?? '').split('?')[0] ?? '';
  if (path.endsWith('/manifests/1.root.json')) {
    const manifest = {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: DIGEST, size: CONTENT.length },
      layers: [{ mediaType: TRUST_LAYER, digest: DIGEST, size: CONTENT.length, annotations: { [TITLE]: '1.root.json' } }],
    };
    res.writeHead(200, { 'content-type': OCI_MANIFEST }).end(JSON.stringify(manifest));
    return;
  }
  if (path.endsWith(`/blobs/${DIGEST}`)) blob(res);
  else res.writeHead(404).end();
}

describe('OCI registry credentials', () => {
  let registry: Fake;
  let other: Fake;
  const servers: Server[] = [];

  before(async () => {
    registry = await fake();
    other = await fake();
    servers.push(registry.server, other.server);
  });
  after(async () => {
    for (const s of servers) {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
  });
  const reset = () => {
    registry.seen.length = 0;
    other.seen.length = 0;
  };
  const storeUrl = () => `oci+http://${registry.url.slice('http://'.length)}/apx`;
  const leaked = (seen: Seen[]) => seen.filter((s) => s.authorization !== undefined);

  it('never sends them to a token realm on another host or port over plain http', async () => {
    reset();
    registry.handle = (req, res) => {
      if (req.headers.authorization === 'Bearer good') return serveTrustFile(req, res, (r) => r.end(CONTENT));
      res
        .writeHead(401, { 'www-authenticate': `Bearer realm="${other.url}/token",service="fake",scope="x"` })
        .end('{"errors":[{"code":"UNAUTHORIZED"}]}');
    };
    other.handle = (_req, res) => void res.writeHead(200, { 'content-type': 'application/json' }).end('{"token":"good"}');
    const store = await openStore(storeUrl(), { env: { APX_OCI_USERNAME: USER, APX_OCI_PASSWORD: PASSWORD } });
    const err = await store.get('tuf/1.root.json').then(
      () => assert.fail('the credentials were sent'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof StorageError && err.code === StorageErrorCode.DENIED, String(err));
    assert.match(
      err.message,
      /token service http:\/\/127\.0\.0\.1:\d+ is plain http on another host; registry credentials are sent only over https/,
    );
    assert.doesNotMatch(`${err.message} ${err.hint}`, new RegExp(PASSWORD));
    assert.deepEqual(other.seen, [], 'the realm on another origin was contacted');
    // Without credentials, an anonymous token may come from anywhere: it carries no secret of ours.
    reset();
    const anonymous = await openStore(storeUrl());
    assert.deepEqual(await anonymous.get('tuf/1.root.json'), CONTENT);
    assert.equal(other.seen.length, 1);
    assert.deepEqual(leaked(other.seen), []);
  });

  it("sends them to a realm on the registry's own loopback origin", async () => {
    reset();
    registry.handle = (req, res) => {
      if ((req.url ?? '').startsWith('/token')) {
        if (req.headers.authorization !== BASIC) return void res.writeHead(401).end();
        return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"token":"good"}');
      }
      if (req.headers.authorization === 'Bearer good') return serveTrustFile(req, res, (r) => r.end(CONTENT));
      res.writeHead(401, { 'www-authenticate': `Bearer realm="${registry.url}/token",service="fake"` }).end();
    };
    const store = await openStore(storeUrl(), { env: { APX_OCI_USERNAME: USER, APX_OCI_PASSWORD: PASSWORD } });
    assert.deepEqual(await store.get('tuf/1.root.json'), CONTENT);
    assert.ok(registry.seen.some((s) => s.path.startsWith('/token') && s.authorization === BASIC));
  });

  it('does not carry Authorization along a redirect to another origin (a blob CDN)', async () => {
    for (const env of [{ APX_OCI_USERNAME: USER, APX_OCI_PASSWORD: PASSWORD }, { APX_OCI_TOKEN: STATIC_TOKEN }]) {
      reset();
      registry.handle = (req, res) => {
        if (req.headers.authorization === undefined)
          return void res.writeHead(401, { 'www-authenticate': 'Basic realm="x"' }).end();
        serveTrustFile(req, res, (r) => r.writeHead(307, { location: `${other.url}/cdn/blob?sig=abc` }).end());
      };
      other.handle = (_req, res) => void res.end(CONTENT);
      const store = await openStore(storeUrl(), { env });
      assert.deepEqual(await store.get('tuf/1.root.json'), CONTENT);
      assert.ok(leaked(registry.seen).length > 0, 'the registry itself gets the credentials');
      assert.deepEqual(
        other.seen.map((s) => s.path),
        ['/cdn/blob?sig=abc'],
      );
      assert.deepEqual(leaked(other.seen), [], 'Authorization followed the redirect to another origin');
    }
  });

  it('does not carry the Basic credentials along a redirect of the token realm to another origin', async () => {
    reset();
    registry.handle = (req, res) => {
      if ((req.url ?? '').startsWith('/token')) return void res.writeHead(302, { location: `${other.url}/token2` }).end();
      if (req.headers.authorization === 'Bearer good') return serveTrustFile(req, res, (r) => r.end(CONTENT));
      res.writeHead(401, { 'www-authenticate': `Bearer realm="${registry.url}/token"` }).end();
    };
    other.handle = (_req, res) => void res.writeHead(200, { 'content-type': 'application/json' }).end('{"token":"good"}');
    const store = await openStore(storeUrl(), { env: { APX_OCI_USERNAME: USER, APX_OCI_PASSWORD: PASSWORD } });
    assert.deepEqual(await store.get('tuf/1.root.json'), CONTENT);
    assert.equal(other.seen.length, 1);
    assert.deepEqual(leaked(other.seen), []);
  });
});
