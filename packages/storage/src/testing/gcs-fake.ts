// A loopback server speaking the slice of the GCS JSON API that @google-cloud/storage 7
// uses for our calls: object metadata (with its generation), alt=media download (with
// ?generation=), simple, multipart and resumable uploads with ifGenerationMatch, list with
// prefix and paging, delete. Like GCS, every write makes a new, larger generation, and
// ifGenerationMatch=N (0: no live object) is decided atomically with the write: 412
// conditionNotMet otherwise (for a resumable upload, when the session completes); a value
// that is not a generation is a 400. Anything else answers 501 and is
// recorded, so a test can prove none happened.
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

interface StoredObject {
  data: Buffer;
  generation: number;
  contentType: string;
  updated: string;
}

export interface FakeGcs {
  url: string;
  /** Requests the fake did not understand (method and path). */
  unhandled: string[];
  /** Every request, as `METHOD /path?query`. */
  log: string[];
  close(): Promise<void>;
}

const PAGE_SIZE = 2; // small, so that listing exercises pagination

export async function startFakeGcs(buckets: string[]): Promise<FakeGcs> {
  const objects = new Map<string, StoredObject>();
  const sessions = new Map<string, { bucket: string; name: string; ifGenerationMatch: string | null; contentType: string }>();
  const unhandled: string[] = [];
  const log: string[] = [];
  let nextGeneration = 1_700_000_000_000_000;

  const metadata = (bucket: string, name: string, o: StoredObject) => ({
    kind: 'storage#object',
    id: `${bucket}/${name}/${o.generation}`,
    name,
    bucket,
    generation: String(o.generation),
    metageneration: '1',
    contentType: o.contentType,
    size: String(o.data.length),
    md5Hash: createHash('md5').update(o.data).digest('base64'),
    updated: o.updated,
    timeCreated: o.updated,
  });

  const json = (res: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
  const error = (res: ServerResponse, status: number, message: string, reason: string) =>
    json(res, status, { error: { code: status, message, errors: [{ message, domain: 'global', reason }] } });

  /** Answers 400 or 412 and returns false when ifGenerationMatch does not hold for the object now. */
  const precondition = (res: ServerResponse, bucket: string, name: string, ifGen: string | null): boolean => {
    if (ifGen === null) return true;
    if (!/^(0|[1-9][0-9]*)$/.test(ifGen)) {
      error(res, 400, `Invalid argument for ifGenerationMatch: ${ifGen}`, 'invalid');
      return false;
    }
    if (String(objects.get(`${bucket}/${name}`)?.generation ?? 0) === ifGen) return true;
    error(res, 412, 'At least one of the pre-conditions you specified did not hold.', 'conditionNotMet');
    return false;
  };

  // Synchronous from the check to the write: the event loop makes it atomic, as GCS is.
  const create = (res: ServerResponse, bucket: string, name: string, data: Buffer, contentType: string, ifGen: string | null) => {
    const key = `${bucket}/${name}`;
    if (!precondition(res, bucket, name, ifGen)) return;
    const o = { data, generation: nextGeneration++, contentType, updated: new Date().toISOString() };
    objects.set(key, o);
    json(res, 200, metadata(bucket, name, o));
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, body: Buffer) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const q = u.searchParams;
    const method = req.method ?? 'GET';
    let m = /^\/storage\/v1\/b\/([^/]+)\/o\/(.+)$/.exec(u.pathname);
    if (m) {
      const bucket = decodeURIComponent(m[1] ?? '');
      const name = decodeURIComponent(m[2] ?? '');
      const o = objects.get(`${bucket}/${name}`);
      const wanted = q.get('generation');
      if (!buckets.includes(bucket)) return error(res, 404, 'The specified bucket does not exist.', 'notFound');
      if (!o || (wanted !== null && wanted !== String(o.generation)))
        return error(res, 404, `No such object: ${bucket}/${name}`, 'notFound');
      if (method === 'DELETE') {
        objects.delete(`${bucket}/${name}`);
        res.writeHead(204).end();
        return;
      }
      if (method !== 'GET') return false;
      if (q.get('alt') === 'media') {
        res.writeHead(200, {
          'content-type': o.contentType,
          'content-length': o.data.length,
          'x-goog-generation': String(o.generation),
          'x-goog-stored-content-length': String(o.data.length),
        });
        res.end(o.data);
        return;
      }
      return json(res, 200, metadata(bucket, name, o));
    }
    m = /^\/storage\/v1\/b\/([^/]+)\/o\/?$/.exec(u.pathname);
    if (m && method === 'GET') {
      const bucket = decodeURIComponent(m[1] ?? '');
      if (!buckets.includes(bucket)) return error(res, 404, 'The specified bucket does not exist.', 'notFound');
      const prefix = q.get('prefix') ?? '';
      const names = [...objects.keys()]
        .filter((k) => k.startsWith(`${bucket}/`))
        .map((k) => k.slice(bucket.length + 1))
        .filter((n) => n.startsWith(prefix))
        .sort();
      const start = Number(q.get('pageToken') ?? '0');
      const page = names.slice(start, start + PAGE_SIZE);
      const items = page.map((n) => metadata(bucket, n, objects.get(`${bucket}/${n}`) as StoredObject));
      const next = start + PAGE_SIZE < names.length ? { nextPageToken: String(start + PAGE_SIZE) } : {};
      return json(res, 200, { kind: 'storage#objects', ...(items.length ? { items } : {}), ...next });
    }
    m = /^\/upload\/storage\/v1\/b\/([^/]+)\/o\/?$/.exec(u.pathname);
    if (m) {
      const bucket = decodeURIComponent(m[1] ?? '');
      if (!buckets.includes(bucket)) return error(res, 404, 'The specified bucket does not exist.', 'notFound');
      const type = q.get('uploadType');
      const ifGen = q.get('ifGenerationMatch');
      if (method === 'POST' && type === 'media') {
        const name = q.get('name') ?? '';
        return create(res, bucket, name, body, req.headers['content-type'] ?? 'application/octet-stream', ifGen);
      }
      if (method === 'POST' && type === 'multipart') {
        const parts = parseMultipart(body, req.headers['content-type'] ?? '');
        const meta = JSON.parse(parts[0]?.body.toString('utf8') ?? '{}') as { name?: string; contentType?: string };
        const name = meta.name ?? q.get('name') ?? '';
        return create(
          res,
          bucket,
          name,
          parts[1]?.body ?? Buffer.alloc(0),
          meta.contentType ?? 'application/octet-stream',
          ifGen,
        );
      }
      if (method === 'POST' && type === 'resumable') {
        const meta = body.length ? (JSON.parse(body.toString('utf8')) as { name?: string; contentType?: string }) : {};
        const name = meta.name ?? q.get('name') ?? '';
        const id = randomBytes(8).toString('hex');
        sessions.set(id, {
          bucket,
          name,
          ifGenerationMatch: ifGen,
          contentType: meta.contentType ?? 'application/octet-stream',
        });
        res.writeHead(200, {
          location: `http://${req.headers.host}/upload/storage/v1/b/${m[1]}/o?uploadType=resumable&upload_id=${id}`,
        });
        res.end();
        return;
      }
      if (method === 'PUT' && type === 'resumable') {
        const s = sessions.get(q.get('upload_id') ?? '');
        if (!s) return error(res, 404, 'No such upload', 'notFound');
        sessions.delete(q.get('upload_id') ?? '');
        return create(res, s.bucket, s.name, body, s.contentType, s.ifGenerationMatch);
      }
    }
    return false;
  };

  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    log.push(`${req.method} ${req.url}`);
    const done = await handle(req, res, Buffer.concat(chunks));
    if (done === false) {
      unhandled.push(`${req.method} ${req.url}`);
      error(res, 501, `fake GCS does not implement ${req.method} ${req.url}`, 'notImplemented');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    unhandled,
    log,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** multipart/related as the client sends it: `--boundary`, headers, blank line, body. */
function parseMultipart(body: Buffer, contentType: string): Array<{ headers: string; body: Buffer }> {
  const boundary = /boundary="?([^";]+)"?/.exec(contentType)?.[1];
  if (!boundary) return [];
  const delimiter = Buffer.from(`--${boundary}`);
  const parts: Array<{ headers: string; body: Buffer }> = [];
  let pos = body.indexOf(delimiter);
  while (pos >= 0) {
    const start = pos + delimiter.length;
    if (body.subarray(start, start + 2).toString() === '--') break;
    const next = body.indexOf(delimiter, start);
    if (next < 0) break;
    const part = body.subarray(start + 2, next - 2); // skip CRLF after the delimiter and before the next
    const split = part.indexOf('\r\n\r\n');
    parts.push({ headers: part.subarray(0, split).toString('utf8'), body: part.subarray(split + 4) });
    pos = next;
  }
  return parts;
}
