// Local Sigstore services for tests, on loopback, speaking the real HTTP protocols: Fulcio
// (POST /api/v2/signingCert), Rekor v1 (POST /api/v1/log/entries), a timestamp authority
// (POST /api/v1/timestamp, RFC 3161 `application/timestamp-query` or Sigstore's JSON), a
// second, real RFC 3161 TSA (`openssl ts -reply` behind a small HTTP adapter), and an OIDC
// issuer whose tokens (ES256 JWTs) this Fulcio accepts. Fulcio, Rekor and the first TSA are
// @sigstore/mock's handlers behind node:http, so a CLI running as another process reaches
// them. Exported as `@apx/sign/testing/sigstore-services`; tests only.
//
// Usage:
//
//   import { startSigstoreServices, keylessBlobBundle } from '@apx/sign/testing/sigstore-services';
//   const services = await startSigstoreServices();           // t.after(() => services.close())
//   const token = services.token('https://github.com/acme/policies/.github/workflows/release.yml@refs/heads/main');
//   // the real CLI, as another process:
//   //   apx sign-blob --keyless --identity-token <token> --fulcio-url <services.fulcioUrl>
//   //     --rekor-url <services.rekorUrl> [--timestamp-server-url <services.tsaUrl | services.opensslTsaUrl>]
//   //     --bundle out.sigstore.json blob
//   writeFileSync('trusted_root.json', services.trustedRootJson);  // Fulcio CA, Rekor and CT log keys, both TSAs
//   // fixtures in-process (no CLI): a keyless message-signature bundle over `blob`, or a keyless
//   // DSSE bundle binding an artifact (what `apx sign --keyless` writes):
//   const { bundleJson, certificatePem, trustedRootJson } = await keylessBlobBundle(services, blob,
//     { identity: 'https://example.com/ci@refs/heads/main', timestamp: 'openssl' });
//   const art = await keylessArtifactBundle(services, wasm, { policyId, version, environment, ... }, { identity });
//   // check a bundle with @sigstore/verify (independent of APX), default thresholds:
//   const { identity } = independentVerify(bundleJson, services.trustedRootJson, { artifact: blob });
//   // GitHub Actions' ambient token: ACTIONS_ID_TOKEN_REQUEST_URL=services.actions.requestUrl,
//   //   ACTIONS_ID_TOKEN_REQUEST_TOKEN=services.actions.requestToken (the token names services.actions.identity).
//
// Identities are URIs in the certificates (the mock Fulcio writes the token's `sub` as a URI
// SAN); the issuer extension is the token's `iss` (services.issuer unless `issuer` is given).
// Fulcio refuses (401) a token not signed by this issuer's key, or expired. All services use
// one whole-second clock fixed at start (the mock TSA's genTime must have no odd fractions),
// so certificates are valid from then for 10 minutes; the openssl TSA uses the real time.
// Every trust-root entry has a `validFor.start` (a minute before that clock) and no end.
// Certificates that must fail: `startSigstoreServices({ fulcioWithoutSct: true })` (no SCT),
// `{ fulcioClockOffsetMs: -3_600_000 }` (expired when logged and timestamped), another
// services' trustedRootJson (wrong chain), token(identity, { issuer }) (another issuer).
import { execFile, spawnSync } from 'node:child_process';
import {
  createHash,
  generateKeyPairSync,
  type KeyObject,
  X509Certificate as NodeX509,
  randomBytes,
  sign,
  verify,
} from 'node:crypto';
import { mkdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { tempDir } from '@apx/core/testing/hygiene';
import { bundleFromJSON } from '@sigstore/bundle';
import { ASN1Obj } from '@sigstore/core';
import { fulcioHandler, initializeCA, initializeCTLog, initializeTLog, initializeTSA } from '@sigstore/mock';
import { PublicKeyDetails, TrustedRoot } from '@sigstore/protobuf-specs';
import { toSignedEntity, toTrustMaterial, Verifier } from '@sigstore/verify';
import { type BindingClaims, signArtifact } from '../artifact.js';
import { signBlob } from '../blob.js';
import { KeylessSigner, rekorWitness, type SigningIdentity } from '../keyless.js';
import { TimestampWitness } from '../timestamp.js';

const run = promisify(execFile);

export interface TokenOptions {
  /** Extra claims (GitHub's repository, ref, sha, workflow... become Fulcio extensions). */
  claims?: Record<string, unknown>;
  /** Seconds until `exp` (default 600; negative for an expired token). */
  expiresInSeconds?: number;
  /** The `iss` claim (default: this issuer's URL). The token is still signed by this issuer's key. */
  issuer?: string;
  audience?: string;
}

export interface SigstoreServices {
  fulcioUrl: string;
  rekorUrl: string;
  /** The mock TSA (RFC 3161 and Sigstore JSON requests), at its full path. */
  tsaUrl: string;
  /** The openssl TSA (a real RFC 3161 implementation); undefined when openssl is not installed. */
  opensslTsaUrl: string | undefined;
  /** The OIDC issuer's URL (the `iss` of its tokens; /.well-known/openid-configuration, /jwks). */
  issuer: string;
  /** A signed OIDC ID token (ES256) for `identity` (its `sub`), audience "sigstore". */
  token(identity: string, options?: TokenOptions): string;
  /** GitHub Actions' token endpoint (ACTIONS_ID_TOKEN_REQUEST_URL / _TOKEN) handing out a token for `identity`. */
  actions: { requestUrl: string; requestToken: string; identity: string; claims: Record<string, unknown> };
  /** The trusted root for these services (proto3 JSON object, as trusted_root.json holds it). */
  trustedRoot: Record<string, unknown>;
  trustedRootJson: string;
  /** The services' one clock (whole seconds): certificates, log entries, mock timestamps. */
  clock: Date;
  /** How many requests each service answered (tests check a service was, or was not, used). */
  requests: { fulcio: number; rekor: number; tsa: number; opensslTsa: number };
  close(): Promise<void>;
}

export interface StartOptions {
  /** Start the openssl TSA (default: when openssl is installed). */
  openssl?: boolean;
  /** Fulcio issues certificates without an embedded SCT (a CA that skips certificate transparency). */
  fulcioWithoutSct?: boolean;
  /**
   * Fulcio's clock, in ms from the other services' (e.g. -3_600_000: its certificates expired
   * 50 minutes before Rekor and the mock TSA date the signature).
   */
  fulcioClockOffsetMs?: number;
}

interface Reply {
  status: number;
  type?: string;
  body: string | Buffer;
}

type Route = (req: IncomingMessage, body: Buffer, url: URL) => Promise<Reply>;

async function listen(route: Route): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      route(req, Buffer.concat(chunks), url)
        .catch((err: unknown) => ({ status: 500, type: 'text/plain', body: String((err as Error)?.message ?? err) }))
        .then((r) => {
          res.writeHead(r.status, { 'Content-Type': r.type ?? 'application/json' });
          res.end(r.body);
        });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return { url: `http://127.0.0.1:${address.port}`, server };
}

const json = (status: number, value: unknown): Reply => ({ status, type: 'application/json', body: JSON.stringify(value) });
const notFound = (): Reply => json(404, { code: 5, message: 'not found' });
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest();
const bytes = (v: string | ArrayBufferView): string | Buffer =>
  typeof v === 'string' ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
const b64 = (v: ArrayBufferView) => Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
const p256 = () => generateKeyPairSync('ec', { namedCurve: 'P-256' });

/** Real Rekor stores a dsse proposal canonicalized (hashes, not the envelope); the mock logs it as given. */
function canonicalRekorEntry(proposed: Record<string, unknown>): Record<string, unknown> {
  if (proposed.kind !== 'dsse') return proposed;
  const content = (proposed.spec as { proposedContent: { envelope: string; verifiers: string[] } }).proposedContent;
  const envelope = JSON.parse(content.envelope) as { payload: string; signatures: Array<{ sig: string }> };
  return {
    apiVersion: '0.0.1',
    kind: 'dsse',
    spec: {
      envelopeHash: { algorithm: 'sha256', value: sha256(Buffer.from(content.envelope)).toString('hex') },
      payloadHash: { algorithm: 'sha256', value: sha256(Buffer.from(envelope.payload, 'base64')).toString('hex') },
      signatures: envelope.signatures.map((s) => ({ signature: s.sig, verifier: content.verifiers[0] })),
    },
  };
}

/** What an RFC 3161 TimeStampReq asks: the hash, its algorithm, the nonce, whether to include the certificate. */
function parseTimeStampReq(der: Buffer): { hash: Buffer; hashOid: string; nonce?: bigint; certReq: boolean } {
  const req = ASN1Obj.parseBuffer(Buffer.from(der));
  const imprint = req.subs[1];
  const alg = imprint?.subs[0]?.subs[0];
  const hash = imprint?.subs[1];
  if (!alg || !hash) throw new Error('not a TimeStampReq');
  let nonce: bigint | undefined;
  let certReq = false;
  for (const sub of req.subs.slice(2)) {
    if (sub.tag.number === 2) nonce = sub.toInteger();
    if (sub.tag.number === 1) certReq = sub.toBoolean();
  }
  return { hash: hash.value, hashOid: alg.toOID(), ...(nonce === undefined ? {} : { nonce }), certReq };
}

const HASH_OIDS: Record<string, string> = {
  sha256: '2.16.840.1.101.3.4.2.1',
  sha384: '2.16.840.1.101.3.4.2.2',
  sha512: '2.16.840.1.101.3.4.2.3',
};

function opensslInstalled(): boolean {
  const r = spawnSync('openssl', ['version'], { stdio: 'ignore' });
  return r.error === undefined && r.status === 0;
}

/** Starts every service on 127.0.0.1 (ephemeral ports). Close them with `close()`. */
export async function startSigstoreServices(options: StartOptions = {}): Promise<SigstoreServices> {
  const requests = { fulcio: 0, rekor: 0, tsa: 0, opensslTsa: 0 };
  const servers: Server[] = [];
  const dir = tempDir('apx-sigstore-');

  // The OIDC issuer: discovery, JWKS, and GitHub Actions' token endpoint.
  const issuerKey = p256();
  const kid = sha256(issuerKey.publicKey.export({ type: 'spki', format: 'der' }))
    .toString('hex')
    .slice(0, 16);
  const actionsRequestToken = randomBytes(16).toString('hex');
  const actionsIdentity = 'https://github.com/apx-test/policies/.github/workflows/release.yml@refs/heads/main';
  const actionsClaims = {
    repository: 'apx-test/policies',
    repository_id: '123456',
    ref: 'refs/heads/main',
    sha: 'a'.repeat(40),
    workflow: 'release',
    event_name: 'push',
    job_workflow_ref: 'apx-test/policies/.github/workflows/release.yml@refs/heads/main',
  };
  let issuerUrl = '';
  const token = (identity: string, o: TokenOptions = {}): string => {
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: 'ES256', typ: 'JWT', kid };
    const payload = {
      iss: o.issuer ?? issuerUrl,
      sub: identity,
      aud: o.audience ?? 'sigstore',
      iat: now,
      nbf: now,
      exp: now + (o.expiresInSeconds ?? 600),
      ...o.claims,
    };
    const signingInput = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
    const signature = sign('sha256', Buffer.from(signingInput), { key: issuerKey.privateKey, dsaEncoding: 'ieee-p1363' });
    return `${signingInput}.${signature.toString('base64url')}`;
  };
  const issuer = await listen(async (req, _body, url) => {
    if (url.pathname === '/.well-known/openid-configuration') {
      return json(200, {
        issuer: issuerUrl,
        jwks_uri: `${issuerUrl}/jwks`,
        response_types_supported: ['id_token'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['ES256'],
      });
    }
    if (url.pathname === '/jwks') {
      return json(200, { keys: [{ ...issuerKey.publicKey.export({ format: 'jwk' }), kid, alg: 'ES256', use: 'sig' }] });
    }
    if (url.pathname === '/actions/token') {
      if (req.headers.authorization !== `Bearer ${actionsRequestToken}`) return json(401, { message: 'bad request token' });
      const audience = url.searchParams.get('audience') ?? undefined;
      return json(200, { value: token(actionsIdentity, { claims: actionsClaims, ...(audience ? { audience } : {}) }) });
    }
    return notFound();
  });
  servers.push(issuer.server);
  issuerUrl = issuer.url;

  /** Whether this issuer signed `jwt` and it has not expired (what Fulcio checks before issuing). */
  const tokenAccepted = (jwt: unknown): boolean => {
    if (typeof jwt !== 'string') return false;
    const [h, p, s] = jwt.split('.');
    if (!h || !p || !s) return false;
    const ok = verify(
      'sha256',
      Buffer.from(`${h}.${p}`),
      { key: issuerKey.publicKey, dsaEncoding: 'ieee-p1363' },
      Buffer.from(s, 'base64url'),
    );
    if (!ok) return false;
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as { exp?: number };
    return typeof claims.exp !== 'number' || claims.exp * 1000 > Date.now();
  };

  // Fulcio (with its CT log), behind a check of the token's signature.
  const fulcio = await listen(async (req, body, url) => {
    if (req.method !== 'POST' || url.pathname !== fulcioMock.path) return notFound();
    requests.fulcio++;
    let request: { credentials?: { oidcIdentityToken?: unknown } };
    try {
      request = JSON.parse(body.toString('utf8'));
    } catch {
      return json(400, { code: 3, message: 'The request body is not JSON' });
    }
    if (!tokenAccepted(request.credentials?.oidcIdentityToken)) {
      return json(401, { code: 16, message: 'There was an error processing the identity token' });
    }
    const r = await fulcioMock.fn(body.toString('utf8'));
    return { status: r.statusCode, type: r.contentType ?? 'text/plain', body: bytes(r.response) };
  });
  servers.push(fulcio.server);

  // Rekor v1: the checkpoint names the host of the URL the log is made with.
  const rekorServer = await listen(async (req, body, url) => {
    if (req.method !== 'POST' || url.pathname !== '/api/v1/log/entries') return notFound();
    requests.rekor++;
    const entry = await tlog.log(canonicalRekorEntry(JSON.parse(body.toString('utf8'))));
    return json(201, entry);
  });
  servers.push(rekorServer.server);

  // The mock TSA, answering RFC 3161 queries (what APX and cosign send) and Sigstore's JSON ones.
  const tsaServer = await listen(async (req, body, url) => {
    if (req.method !== 'POST' || url.pathname !== '/api/v1/timestamp') return notFound();
    requests.tsa++;
    let query: { artifactHash: Buffer; hashAlgorithmOID: string; nonce: number; policyOID: string; certReq: boolean };
    try {
      if (String(req.headers['content-type']).startsWith('application/json')) {
        const j = JSON.parse(body.toString('utf8')) as {
          artifactHash: string;
          hashAlgorithm?: string;
          nonce?: number;
          certificates?: boolean;
        };
        query = {
          artifactHash: Buffer.from(j.artifactHash, 'base64'),
          hashAlgorithmOID: HASH_OIDS[j.hashAlgorithm ?? 'sha256'] ?? (HASH_OIDS.sha256 as string),
          nonce: j.nonce ?? 1234567890,
          policyOID: '1.3.6.1.4.1.57264.2',
          certReq: j.certificates ?? false,
        };
      } else {
        const q = parseTimeStampReq(body);
        query = {
          artifactHash: q.hash,
          hashAlgorithmOID: q.hashOid,
          nonce: Number(q.nonce ?? 0n),
          policyOID: '1.3.6.1.4.1.57264.2',
          certReq: q.certReq,
        };
      }
    } catch (err) {
      return { status: 400, type: 'text/plain', body: `bad timestamp request: ${(err as Error).message}` };
    }
    return { status: 200, type: 'application/timestamp-reply', body: bytes(await tsa.timestamp(query)) };
  });
  servers.push(tsaServer.server);

  // The mocks' one clock, in whole seconds: the mock TSA's genTime must have no odd fractions,
  // and the mock roots (made at the real time) must be valid at it, so it is the second they
  // are made in (made again in the rare case a second boundary passes meanwhile).
  const ctlogKey = p256();
  const caKey = p256();
  const tlogKey = p256();
  const tsaKey = p256();
  const second = () => Math.floor(Date.now() / 1000) * 1000;
  const initMocks = async () => {
    const ms = Date.now() % 1000;
    if (ms > 600) await new Promise((resolve) => setTimeout(resolve, 1005 - ms));
    const clock = new Date(second());
    const fulcioClock = new Date(clock.getTime() + (options.fulcioClockOffsetMs ?? 0));
    const ctlog = await initializeCTLog(ctlogKey, fulcioClock);
    const ca = await initializeCA(caKey, options.fulcioWithoutSct ? undefined : ctlog, fulcioClock);
    const tlog = await initializeTLog(rekorServer.url, tlogKey, clock);
    const tsa = await initializeTSA(tsaKey, clock);
    return { clock, ca, tlog, tsa };
  };
  let mocks = await initMocks();
  for (let i = 0; i < 5 && second() !== mocks.clock.getTime(); i++) mocks = await initMocks();
  const { clock, ca, tlog, tsa } = mocks;
  const fulcioMock = fulcioHandler(ca, { strict: true });
  const start = new Date(Math.min(clock.getTime(), clock.getTime() + (options.fulcioClockOffsetMs ?? 0)) - 60_000).toISOString();

  const openssl = (options.openssl ?? true) && opensslInstalled() ? await startOpensslTsa(dir, requests) : undefined;
  if (openssl) servers.push(openssl.server);

  const rekorUrl = rekorServer.url;
  const tsaUrl = `${tsaServer.url}/api/v1/timestamp`;
  const spki = (k: KeyObject) => k.export({ type: 'spki', format: 'der' });
  const logInstance = (key: Buffer, baseUrl: string) => ({
    baseUrl,
    hashAlgorithm: 'SHA2_256',
    publicKey: { rawBytes: b64(key), keyDetails: 'PKIX_ECDSA_P256_SHA_256', validFor: { start } },
    logId: { keyId: b64(sha256(key)) },
  });
  const authority = (commonName: string, uri: string, certs: ArrayBufferView[]) => ({
    subject: { organization: 'APX test', commonName },
    uri,
    certChain: { certificates: certs.map((c) => ({ rawBytes: b64(c) })) },
    validFor: { start },
  });
  const trustedRoot = {
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs: [logInstance(spki(tlogKey.publicKey), rekorUrl)],
    certificateAuthorities: [authority('fulcio', fulcio.url, [ca.rootCertificate])],
    ctlogs: [logInstance(spki(ctlogKey.publicKey), `${fulcio.url}/ct`)],
    timestampAuthorities: [
      authority('mock tsa', tsaUrl, [tsa.intCertificate, tsa.rootCertificate]),
      ...(openssl ? [authority('openssl tsa', openssl.url, openssl.chain)] : []),
    ],
  };
  // What a verifier reads must parse as a TrustedRoot (a mistake here fails at start, not in a test).
  TrustedRoot.fromJSON(trustedRoot);

  return {
    fulcioUrl: fulcio.url,
    rekorUrl,
    tsaUrl,
    opensslTsaUrl: openssl?.url,
    issuer: issuerUrl,
    token,
    actions: {
      requestUrl: `${issuerUrl}/actions/token?api-version=2.0`,
      requestToken: actionsRequestToken,
      identity: actionsIdentity,
      claims: actionsClaims,
    },
    trustedRoot,
    trustedRootJson: JSON.stringify(trustedRoot, null, 2),
    clock,
    requests,
    async close() {
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((resolve) => {
              s.closeAllConnections();
              s.close(() => resolve());
            }),
        ),
      );
      await rm(dir, { recursive: true, force: true });
    },
  };
}

const REQ_CNF = `[ req ]
distinguished_name = dn
prompt = no
x509_extensions = v3_root
[ dn ]
O = APX test
CN = APX test TSA root
[ v3_root ]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[ v3_tsa ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = critical,timeStamping
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
`;

const tsaCnf = (dir: string) => `[ tsa ]
default_tsa = apx_tsa
[ apx_tsa ]
dir = ${dir}
serial = $dir/serial
signer_cert = $dir/tsa.crt
signer_key = $dir/tsa.key
certs = $dir/root.crt
signer_digest = sha256
default_policy = 1.3.6.1.4.1.57264.2
other_policies = 1.3.6.1.4.1.57264.2.1
digests = sha256, sha384, sha512
accuracy = secs:1
clock_precision_digits = 0
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
`;

/**
 * A real RFC 3161 TSA: a P-256 root and a TSA certificate (critical timeStamping EKU) made
 * with openssl, and `openssl ts -reply` per request (one at a time: it keeps a serial file).
 * Takes `application/timestamp-query` bodies, or Sigstore's JSON (turned into a query by `openssl ts -query`).
 */
async function startOpensslTsa(
  parent: string,
  requests: { opensslTsa: number },
): Promise<{ url: string; server: Server; chain: Buffer[] }> {
  const dir = join(parent, 'openssl-tsa');
  const at = (name: string) => join(dir, name);
  await mkdir(dir, { recursive: true });
  await writeFile(at('req.cnf'), REQ_CNF);
  await writeFile(at('tsa.cnf'), tsaCnf(dir));
  await writeFile(at('serial'), '01\n');
  for (const key of ['root.key', 'tsa.key']) {
    await run('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', at(key)]);
  }
  await run('openssl', [
    'req',
    '-new',
    '-x509',
    '-config',
    at('req.cnf'),
    '-key',
    at('root.key'),
    '-days',
    '3650',
    '-out',
    at('root.crt'),
  ]);
  await run('openssl', [
    'req',
    '-new',
    '-config',
    at('req.cnf'),
    '-key',
    at('tsa.key'),
    '-subj',
    '/O=APX test/CN=APX test TSA',
    '-out',
    at('tsa.csr'),
  ]);
  await run('openssl', [
    'x509',
    '-req',
    '-in',
    at('tsa.csr'),
    '-CA',
    at('root.crt'),
    '-CAkey',
    at('root.key'),
    '-set_serial',
    '2',
    '-days',
    '3650',
    '-extfile',
    at('req.cnf'),
    '-extensions',
    'v3_tsa',
    '-out',
    at('tsa.crt'),
  ]);
  const chain = [new NodeX509(await readFile(at('tsa.crt'))).raw, new NodeX509(await readFile(at('root.crt'))).raw];
  let queue: Promise<unknown> = Promise.resolve();
  let n = 0;
  const reply = async (query: Buffer | { digestHex: string; alg: string }): Promise<Buffer> => {
    const id = ++n;
    const q = at(`q${id}.tsq`);
    const r = at(`r${id}.tsr`);
    try {
      if (Buffer.isBuffer(query)) await writeFile(q, query);
      else await run('openssl', ['ts', '-query', '-digest', query.digestHex, `-${query.alg}`, '-cert', '-out', q]);
      await run('openssl', [
        'ts',
        '-reply',
        '-config',
        at('tsa.cnf'),
        '-section',
        'apx_tsa',
        '-queryfile',
        q,
        '-inkey',
        at('tsa.key'),
        '-signer',
        at('tsa.crt'),
        '-chain',
        at('root.crt'),
        '-out',
        r,
      ]);
      return await readFile(r);
    } finally {
      await Promise.all([unlink(q).catch(() => undefined), unlink(r).catch(() => undefined)]);
    }
  };
  const { url, server } = await listen(async (req, body) => {
    if (req.method !== 'POST') return notFound();
    requests.opensslTsa++;
    let query: Buffer | { digestHex: string; alg: string } = body;
    if (String(req.headers['content-type']).startsWith('application/json')) {
      const j = JSON.parse(body.toString('utf8')) as { artifactHash: string; hashAlgorithm?: string };
      query = { digestHex: Buffer.from(j.artifactHash, 'base64').toString('hex'), alg: j.hashAlgorithm ?? 'sha256' };
    }
    const answer = queue.then(() => reply(query));
    queue = answer.catch(() => undefined);
    try {
      return { status: 200, type: 'application/timestamp-reply', body: await answer };
    } catch (err) {
      const stderr = String((err as { stderr?: string }).stderr ?? (err as Error).message).split('\n')[0];
      return { status: 400, type: 'text/plain', body: `openssl ts refused the request: ${stderr}` };
    }
  });
  return { url: `${url}/tsr`, server, chain };
}

export interface KeylessFixtureOptions {
  /** The certificate's subject (the token's `sub`); a URI. */
  identity: string;
  /** Token options: extra claims (GitHub workflow claims), another `iss`. */
  token?: TokenOptions;
  /** Add an RFC 3161 timestamp from the mock TSA or the openssl TSA (default: none; Rekor's SET is the time). */
  timestamp?: 'mock' | 'openssl' | false;
}

export interface KeylessFixture {
  bundleJson: string;
  /** The `.sig` content: base64 of the signature over the bytes. */
  signature: string;
  certificatePem: string;
  identity: SigningIdentity;
  trustedRoot: Record<string, unknown>;
  trustedRootJson: string;
}

function keylessWitnesses(services: SigstoreServices, options: KeylessFixtureOptions, entryType?: 'dsse') {
  const tsaUrl =
    options.timestamp === 'mock' ? services.tsaUrl : options.timestamp === 'openssl' ? services.opensslTsaUrl : undefined;
  if (options.timestamp === 'openssl' && !tsaUrl) throw new Error('openssl is not installed: no openssl TSA');
  return [
    rekorWitness(services.rekorUrl, entryType ? { entryType } : {}),
    ...(tsaUrl ? [new TimestampWitness({ url: tsaUrl })] : []),
  ];
}

function keylessSigner(services: SigstoreServices, options: KeylessFixtureOptions): KeylessSigner {
  const jwt = services.token(options.identity, options.token);
  return new KeylessSigner({ fulcioUrl: services.fulcioUrl, identityToken: async () => jwt });
}

/**
 * A keyless message-signature bundle over `blob` (what `apx sign-blob --keyless --bundle`
 * writes): Fulcio certificate, Rekor v1 entry (hashedrekord), optionally an RFC 3161 timestamp.
 */
export async function keylessBlobBundle(
  services: SigstoreServices,
  blob: Uint8Array,
  options: KeylessFixtureOptions,
): Promise<KeylessFixture> {
  const signed = await signBlob(keylessSigner(services, options), blob, { witnesses: keylessWitnesses(services, options) });
  return {
    bundleJson: signed.bundleJson,
    signature: signed.signatureFileContent,
    certificatePem: signed.certificatePem as string,
    identity: signed.identity as SigningIdentity,
    trustedRoot: services.trustedRoot,
    trustedRootJson: services.trustedRootJson,
  };
}

/**
 * A keyless DSSE bundle binding a policy artifact (what `apx sign --keyless` writes as
 * ARTIFACT.sigstore.json): the in-toto binding statement, Fulcio certificate, Rekor v1 dsse entry.
 */
export async function keylessArtifactBundle(
  services: SigstoreServices,
  artifact: Uint8Array,
  claims: BindingClaims,
  options: KeylessFixtureOptions,
): Promise<KeylessFixture & { statement: Record<string, unknown> }> {
  const signed = await signArtifact(keylessSigner(services, options), artifact, claims, new Date(), {
    witnesses: keylessWitnesses(services, options, 'dsse'),
  });
  return {
    bundleJson: signed.bundleJson,
    signature: signed.signatureFileContent,
    certificatePem: signed.certificatePem as string,
    identity: signed.identity as SigningIdentity,
    statement: signed.statement,
    trustedRoot: services.trustedRoot,
    trustedRootJson: services.trustedRootJson,
  };
}

export interface IndependentVerifyOptions {
  /** The artifact bytes (message-signature bundles need them). */
  artifact?: Uint8Array;
  /** Keyed bundles: the public keys trusted, by hint, with their validity window. */
  keys?: Record<string, { spkiDer: Buffer; validFor: { start: Date; end?: Date } }>;
  tlogThreshold?: number;
  ctlogThreshold?: number;
  timestampThreshold?: number;
}

/**
 * Verifies a bundle with @sigstore/verify (an implementation independent of APX's) against a
 * trusted root (these services' `trustedRootJson`, or any trusted_root.json text), with
 * @sigstore/verify's default thresholds unless given. Returns who signed: the key, and for
 * certificates the identity (SAN and issuer). Throws @sigstore/verify's errors (`code`).
 */
export function independentVerify(
  bundleJson: string,
  trustedRootJson: string,
  options: IndependentVerifyOptions = {},
): { identity?: { subjectAlternativeName?: string; issuer?: string } } {
  const keys = Object.fromEntries(
    Object.entries(options.keys ?? {}).map(([hint, k]) => [
      hint,
      {
        rawBytes: k.spkiDer,
        keyDetails: PublicKeyDetails.PKIX_ECDSA_P256_SHA_256,
        validFor: { start: k.validFor.start, ...(k.validFor.end ? { end: k.validFor.end } : {}) },
      },
    ]),
  );
  const trust = toTrustMaterial(TrustedRoot.fromJSON(JSON.parse(trustedRootJson)), keys);
  const verifier = new Verifier(trust, {
    ...(options.tlogThreshold === undefined ? {} : { tlogThreshold: options.tlogThreshold }),
    ...(options.ctlogThreshold === undefined ? {} : { ctlogThreshold: options.ctlogThreshold }),
    ...(options.timestampThreshold === undefined ? {} : { timestampThreshold: options.timestampThreshold }),
  });
  const entity = toSignedEntity(
    bundleFromJSON(JSON.parse(bundleJson)),
    options.artifact ? Buffer.from(options.artifact) : undefined,
  );
  const signer = verifier.verify(entity);
  const identity = signer.identity;
  return identity
    ? {
        identity: {
          ...(identity.subjectAlternativeName === undefined ? {} : { subjectAlternativeName: identity.subjectAlternativeName }),
          ...(identity.extensions?.issuer === undefined ? {} : { issuer: identity.extensions.issuer }),
        },
      }
    : {};
}
