// A loopback HTTP proxy for store tests: it can cut the next download short (to prove
// truncation is detected) and can add atomic If-None-Match: * creates to a server that
// lacks them (s3rver predates S3's conditional writes, which S3, MinIO and R2 now have).
import { createServer, type IncomingMessage, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface TestProxy {
  url: string;
  /** The next GET whose decoded path and query contain `pathPart` gets its headers and half its body, then a reset. */
  truncateNext(pathPart: string): void;
  close(): Promise<void>;
}

export interface TestProxyOptions {
  /** Emulate conditional creates (PUT with If-None-Match: *) with a per-path lock and a HEAD. */
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
      if (options.conditionalCreates && req.method === 'PUT' && req.headers['if-none-match'] === '*') {
        const previous = locks.get(path) ?? Promise.resolve();
        let release = () => {};
        const mine = new Promise<void>((r) => {
          release = r;
        });
        locks.set(
          path,
          previous.then(() => mine),
        );
        await previous;
        try {
          const head = await forward(req, Buffer.alloc(0), 'HEAD');
          if (head.status === 200) {
            res.writeHead(412, { 'content-type': 'application/xml' });
            res.end(
              '<?xml version="1.0" encoding="UTF-8"?><Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>',
            );
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

/** A loopback port nothing listens on: bound, then closed. */
export async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
