// A loopback HTTP proxy for store tests: it can cut the next download short (to prove
// truncation is detected) and can add S3's atomic conditional writes (If-None-Match: * and
// If-Match: <etag>) to a server that lacks them (s3rver predates them; S3, MinIO and R2
// have them).
import { createServer, type IncomingMessage, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface TestProxy {
  url: string;
  /** The next GET whose decoded path and query contain `pathPart` gets its headers and half its body, then a reset. */
  truncateNext(pathPart: string): void;
  close(): Promise<void>;
}

export interface TestProxyOptions {
  /**
   * Emulate S3's conditional writes: a PUT with If-None-Match: * (create-only) or If-Match:
   * <etag> (compare-and-swap). Every write to a path holds a per-path lock while the proxy
   * checks the condition with a HEAD and forwards the PUT, so check and write are atomic as
   * seen through the proxy. A failed condition is S3's 412 PreconditionFailed; If-Match on a
   * missing key is S3's 404 NoSuchKey.
   */
  conditionalWrites?: boolean;
  /** The former name of conditionalWrites (other packages' tests still use it). */
  conditionalCreates?: boolean;
  /**
   * Emulate distribution's token authentication: requests need `Bearer <token>`, else 401
   * with a Bearer challenge pointing at `/token`, which hands out the token for Basic
   * `user:password`. Requested scopes are recorded in `scopes`.
   */
  tokenAuth?: { user: string; password: string; token: string; scopes: string[] };
}

export async function startProxy(upstream: string, options: TestProxyOptions = {}): Promise<TestProxy> {
  const target = new URL(upstream);
  const truncations: string[] = [];
  const locks = new Map<string, Promise<void>>();
  const conditional = options.conditionalWrites === true || options.conditionalCreates === true;

  const forward = (
    req: IncomingMessage,
    body: Buffer,
    method = req.method ?? 'GET',
  ): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> =>
    new Promise((resolve, reject) => {
      const headers = method === 'HEAD' && req.method !== 'HEAD' ? {} : { ...req.headers };
      const r = request({ host: target.hostname, port: target.port, method, path: req.url, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 502, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      });
      r.on('error', reject);
      r.end(method === 'HEAD' && req.method !== 'HEAD' ? undefined : body);
    });

  /** Waits for the path's previous writer; returns the release of this one. */
  const lock = async (path: string): Promise<() => void> => {
    const previous = locks.get(path) ?? Promise.resolve();
    let release = () => {};
    const mine = new Promise<void>((r) => {
      release = r;
    });
    const chained = previous.then(() => mine);
    locks.set(path, chained);
    await previous;
    return () => {
      if (locks.get(path) === chained) locks.delete(path);
      release();
    };
  };

  /** S3's answer to a conditional PUT whose condition does not hold now, or undefined. */
  const preconditionFailure = async (
    req: IncomingMessage,
  ): Promise<{ status: number; code: string; message: string } | undefined> => {
    const ifNoneMatch = req.headers['if-none-match'];
    const ifMatch = req.headers['if-match'];
    if (req.method !== 'PUT' || (ifNoneMatch === undefined && ifMatch === undefined)) return undefined;
    const head = await forward(req, Buffer.alloc(0), 'HEAD');
    const failed = {
      status: 412,
      code: 'PreconditionFailed',
      message: 'At least one of the pre-conditions you specified did not hold',
    };
    if (ifNoneMatch === '*' && head.status === 200) return failed;
    if (ifMatch !== undefined) {
      if (head.status === 404) return { status: 404, code: 'NoSuchKey', message: 'The specified key does not exist.' };
      const etag = head.headers.etag;
      if (typeof etag !== 'string' || normalizeEtag(etag) !== normalizeEtag(ifMatch)) return failed;
    }
    return undefined;
  };

  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const path = (req.url ?? '').split('?')[0] ?? '';
    const auth = options.tokenAuth;
    if (auth && path === '/token') {
      const basic = `Basic ${Buffer.from(`${auth.user}:${auth.password}`).toString('base64')}`;
      auth.scopes.push(new URL(req.url ?? '', 'http://x').searchParams.get('scope') ?? '');
      if (req.headers.authorization !== basic) {
        res.writeHead(401).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: auth.token }));
      return;
    }
    if (auth && req.headers.authorization !== `Bearer ${auth.token}`) {
      const realm = `http://${req.headers.host}/token`;
      res.writeHead(401, { 'www-authenticate': `Bearer realm="${realm}",service="test-registry",scope="repository:x:pull"` });
      res.end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
      return;
    }
    try {
      if (conditional && (req.method === 'PUT' || req.method === 'DELETE')) {
        const release = await lock(path);
        try {
          const failed = await preconditionFailure(req);
          if (failed) {
            res.writeHead(failed.status, { 'content-type': 'application/xml' });
            res.end(s3Error(failed.code, failed.message));
            return;
          }
          const up = await forward(req, body);
          res.writeHead(up.status, up.headers);
          res.end(up.body);
        } finally {
          release();
        }
        return;
      }
      const up = await forward(req, body);
      const cut =
        req.method === 'GET' && up.status === 200
          ? truncations.findIndex((p) => decodeURIComponent(req.url ?? '').includes(p))
          : -1;
      if (cut >= 0 && up.body.length > 1) {
        truncations.splice(cut, 1);
        res.writeHead(up.status, { ...up.headers, 'content-length': String(up.body.length) });
        res.write(up.body.subarray(0, Math.floor(up.body.length / 2)), () => res.destroy());
        return;
      }
      res.writeHead(up.status, up.headers);
      res.end(up.body);
    } catch (err) {
      res.writeHead(502);
      res.end(String(err));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    truncateNext: (p) => {
      truncations.push(p);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const normalizeEtag = (etag: string): string => etag.trim().replace(/^W\//, '').replace(/^"|"$/g, '');

const s3Error = (code: string, message: string): string =>
  `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message></Error>`;

/** A loopback port nothing listens on: bound, then closed. */
export async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
