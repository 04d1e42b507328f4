// Test support: keyless Sigstore bundles made offline, in-process. @sigstore/mock's Fulcio
// (CA + CT log), Rekor v1 and RFC 3161 TSA handlers run behind one node:http server on
// 127.0.0.1; @sigstore/sign's real FulcioSigner, RekorWitness and TSAWitness talk to it.
// Each service has its own key, so a test can build a trusted root that trusts some of a
// fixture's services and another fixture's others (wrong CA, wrong CT log, wrong TSA...).
import { createHash, createPublicKey, sign as cryptoSign, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { bundleToJSON } from '@sigstore/bundle';
import { dsse } from '@sigstore/core';
import * as mock from '@sigstore/mock';
import {
  DSSEBundleBuilder,
  FulcioSigner,
  MessageSignatureBundleBuilder,
  RekorWitness,
  type Signer,
  TSAWitness,
  type Witness,
} from '@sigstore/sign';

export interface KeylessServicesOptions {
  /** The services' clock (whole seconds; default two seconds from now): Rekor integrated time and TSA time. */
  clock?: Date;
  /** The CA's clock, when it differs (an earlier one issues certificates already expired at `clock`). */
  caClock?: Date;
  /** Embed an SCT in certificates (default true). */
  ct?: boolean;
}

export interface SignOptions {
  /** OIDC token claims: iss, sub and GitHub's (repository, repository_id, ref, sha, event_name, workflow). */
  claims?: Record<string, string>;
  /** 'message' (hashedrekord) or 'dsse' (in-toto statement over the data). */
  kind?: 'message' | 'dsse';
  /** Log to Rekor (default true). */
  tlog?: boolean;
  /** Add an RFC 3161 timestamp (default true). */
  tsa?: boolean;
  /** For 'dsse': the in-toto statement to sign (default: a statement whose one subject is `data`). */
  statement?: Record<string, unknown>;
  /** For 'dsse': log the envelope as a hashedrekord entry of SHA-256(PAE), as Rekor v2 clients do. */
  dsseAsHashedrekord?: boolean;
  /**
   * For 'message': log to this fixture's Rekor v2 log instead of Rekor v1: a hashedrekord
   * v0.0.2 entry with an inclusion proof in a three-entry tree and a signed checkpoint, and no
   * integrated time (the time then comes from the TSA alone, as with Rekor v2).
   */
  rekorV2?: boolean;
}

/** The Rekor v2 log's origin, its checkpoint signer name, and (as https://) its base URL. */
export const REKOR_V2_ORIGIN = 'rekor-v2.apx.test';

export const DEFAULT_ISSUER = 'https://issuer.example';
export const DEFAULT_SUBJECT = 'https://github.com/acme/policies/.github/workflows/release.yml@refs/tags/v1.0.0';

type ServiceKeys = { ca: unknown; ctlog: unknown; tlog: unknown; tsa: unknown };

export interface KeylessServices {
  url: string;
  clock: Date;
  /** DER of the CA root, CT log key, Rekor key, TSA chain. */
  material: {
    caRoot: Buffer;
    ctlogKey: Buffer;
    tlogKey: Buffer;
    /** SPKI DER of the Rekor v2 log's checkpoint key. */
    tlogV2Key: Buffer;
    tsaChain: Buffer[];
  };
  /** A keyless bundle (JSON text) over `data`: a message signature, or a DSSE statement whose subject is `data`. */
  sign(data: Buffer, options?: SignOptions): Promise<string>;
  /** A bundle over `data` signed with `privateKey` (a key hint, no certificate), with this fixture's TSA and/or Rekor. */
  signWithKey(data: Buffer, privateKey: KeyObject, options?: Omit<SignOptions, 'claims'>): Promise<string>;
  /**
   * A bundle over `data` signed with `privateKey` and carrying `certificatePem` as its
   * verification material, logged and timestamped by this fixture: for certificates a test
   * made itself (with openssl), that no Fulcio would issue.
   */
  signWithCertificate(
    data: Buffer,
    privateKey: KeyObject,
    certificatePem: string,
    options?: Omit<SignOptions, 'claims'>,
  ): Promise<string>;
  close(): Promise<void>;
}

const p256 = () => generateKeyPairSync('ec', { namedCurve: 'P-256' });
const wholeSecond = (d: Date) => new Date(Math.floor(d.getTime() / 1000) * 1000);
const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');
const b64url = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

/**
 * Real Rekor v1 stores a `dsse` proposal as hashes of the envelope and payload with the
 * signatures; the mock logs the proposal verbatim. Rewrite it as Rekor does, so that
 * @sigstore/verify's body check sees what it would see from Rekor.
 */
function asRekorWouldStore(proposal: Record<string, unknown>, asHashedrekord: boolean): Record<string, unknown> {
  if (proposal.kind !== 'dsse') return proposal;
  if (asHashedrekord) {
    const { proposedContent } = proposal.spec as { proposedContent: { envelope: string; verifiers: string[] } };
    const env = JSON.parse(proposedContent.envelope) as {
      payloadType: string;
      payload: string;
      signatures: Array<{ sig: string }>;
    };
    const pae = dsse.preAuthEncoding(env.payloadType, Buffer.from(env.payload, 'base64'));
    return {
      apiVersion: '0.0.1',
      kind: 'hashedrekord',
      spec: {
        data: { hash: { algorithm: 'sha256', value: sha256(pae) } },
        signature: { content: env.signatures[0]?.sig, publicKey: { content: proposedContent.verifiers[0] } },
      },
    };
  }
  const spec = proposal.spec as { proposedContent: { envelope: string; verifiers: string[] } };
  const envelope = JSON.parse(spec.proposedContent.envelope) as { payload: string; signatures: Array<{ sig: string }> };
  return {
    apiVersion: '0.0.1',
    kind: 'dsse',
    spec: {
      envelopeHash: { algorithm: 'sha256', value: sha256(spec.proposedContent.envelope) },
      payloadHash: { algorithm: 'sha256', value: sha256(Buffer.from(envelope.payload, 'base64')) },
      signatures: envelope.signatures.map((s) => ({ signature: s.sig, verifier: spec.proposedContent.verifiers[0] })),
    },
  };
}

export async function startKeylessServices(options: KeylessServicesOptions = {}): Promise<KeylessServices> {
  // Two seconds ahead by default: the mock TSA dates its signing certificate with the real
  // time, not the clock, so a clock rounded down could precede that certificate (~5% of runs).
  const clock = wholeSecond(options.clock ?? new Date(Date.now() + 2000));
  const caClock = wholeSecond(options.caClock ?? clock);
  const keys: ServiceKeys = { ca: p256(), ctlog: p256(), tlog: p256(), tsa: p256() };
  const tlogV2 = p256();
  type Handler = { path: string; fn: (body: string) => Promise<{ statusCode: number; response: unknown; contentType?: string }> };
  const handlers: Handler[] = [];
  let dsseAsHashedrekord = false;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const handler = handlers.find((h) => h.path === req.url);
      if (!handler || req.method !== 'POST') {
        res.writeHead(404).end();
        return;
      }
      handler.fn(Buffer.concat(chunks).toString('utf8')).then(
        (r) => {
          res.writeHead(r.statusCode, { 'Content-Type': r.contentType ?? 'text/plain' });
          res.end(r.response as string | Uint8Array);
        },
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  // biome-ignore lint/suspicious/noExplicitAny: @sigstore/mock's key-pair type is not exported
  const k = keys as Record<keyof ServiceKeys, any>;
  const ctlog = await mock.initializeCTLog(k.ctlog, clock);
  const ca = await mock.initializeCA(k.ca, options.ct === false ? undefined : ctlog, caClock);
  const tlog = await mock.initializeTLog(url, k.tlog, clock);
  const tsa = await mock.initializeTSA(k.tsa, clock);
  handlers.push(mock.fulcioHandler(ca, { strict: true }) as Handler);
  handlers.push({
    path: '/api/v1/log/entries',
    fn: async (body) => ({
      statusCode: 201,
      response: JSON.stringify(await tlog.log(asRekorWouldStore(JSON.parse(body), dsseAsHashedrekord))),
      contentType: 'application/json',
    }),
  });
  handlers.push(mock.tsaHandler(tsa, { strict: true }) as Handler);

  async function build(
    signer: Signer,
    data: Buffer,
    signOptions: Omit<SignOptions, 'claims'>,
    publicKeyDer?: Buffer,
  ): Promise<string> {
    const kind = signOptions.kind ?? 'message';
    dsseAsHashedrekord = signOptions.dsseAsHashedrekord === true;
    const witnesses: Witness[] = [];
    if (signOptions.tlog !== false && !signOptions.rekorV2) {
      witnesses.push(
        new RekorWitness({
          rekorBaseURL: url,
          fetchOnConflict: false,
          ...(kind === 'dsse' ? { entryType: 'dsse' as const } : {}),
        }),
      );
    }
    if (signOptions.tsa !== false) witnesses.push(new TSAWitness({ tsaBaseURL: url }));
    if (kind === 'message') {
      const json = bundleToJSON(await new MessageSignatureBundleBuilder({ signer, witnesses }).create({ data }));
      if (signOptions.rekorV2 && signOptions.tlog !== false) logToRekorV2(json as unknown as RekorV2Bundle, publicKeyDer);
      return JSON.stringify(json);
    }
    const statement = signOptions.statement ?? {
      _type: 'https://in-toto.io/Statement/v1',
      subject: [{ name: 'artifact', digest: { sha256: sha256(data) } }],
      predicateType: 'https://example.com/test/v1',
      predicate: {},
    };
    return JSON.stringify(
      bundleToJSON(
        await new DSSEBundleBuilder({ signer, witnesses }).create({
          data: Buffer.from(JSON.stringify(statement)),
          type: 'application/vnd.in-toto+json',
        }),
      ),
    );
  }

  /**
   * Rekor v2's answer, made here: the entry is leaf 1 of a three-leaf tree (RFC 6962 hashes),
   * and the checkpoint over that tree is a signed note by the v2 log's key.
   */
  function logToRekorV2(bundle: RekorV2Bundle, publicKeyDer: Buffer | undefined): void {
    const material = bundle.verificationMaterial;
    const verifier = material.certificate
      ? { x509Certificate: { rawBytes: material.certificate.rawBytes } }
      : { publicKey: { rawBytes: publicKeyDer?.toString('base64') } };
    const body = Buffer.from(
      JSON.stringify({
        apiVersion: '0.0.2',
        kind: 'hashedrekord',
        spec: {
          hashedRekordV002: {
            data: { algorithm: 'SHA2_256', digest: bundle.messageSignature.messageDigest.digest },
            signature: {
              content: bundle.messageSignature.signature,
              verifier: { ...verifier, keyDetails: 'PKIX_ECDSA_P256_SHA_256' },
            },
          },
        },
      }),
    );
    const h = (...parts: Buffer[]) => createHash('sha256').update(Buffer.concat(parts)).digest();
    const leaf = (b: Buffer) => h(Buffer.from([0]), b);
    const node = (l: Buffer, r: Buffer) => h(Buffer.from([1]), l, r);
    const [l0, l2] = [leaf(Buffer.from('{"earlier":"entry"}')), leaf(Buffer.from('{"later":"entry"}'))];
    const root = node(node(l0, leaf(body)), l2);
    const note = `${REKOR_V2_ORIGIN}\n3\n${root.toString('base64')}\n`;
    const spki = tlogV2.publicKey.export({ type: 'spki', format: 'der' });
    const logId = h(spki);
    const signature = cryptoSign('sha256', Buffer.from(note), tlogV2.privateKey);
    const line = `\u2014 ${REKOR_V2_ORIGIN} ${Buffer.concat([logId.subarray(0, 4), signature]).toString('base64')}\n`;
    material.tlogEntries = [
      {
        logIndex: '1',
        logId: { keyId: logId.toString('base64') },
        kindVersion: { kind: 'hashedrekord', version: '0.0.2' },
        integratedTime: '0',
        inclusionProof: {
          logIndex: '1',
          rootHash: root.toString('base64'),
          treeSize: '3',
          hashes: [l0.toString('base64'), l2.toString('base64')],
          checkpoint: { envelope: `${note}\n${line}` },
        },
        canonicalizedBody: body.toString('base64'),
      },
    ];
  }

  return {
    url,
    clock,
    material: {
      caRoot: Buffer.from(ca.rootCertificate.buffer, ca.rootCertificate.byteOffset, ca.rootCertificate.byteLength),
      ctlogKey: Buffer.from(ctlog.publicKey),
      tlogKey: Buffer.from(tlog.publicKey),
      tlogV2Key: tlogV2.publicKey.export({ type: 'spki', format: 'der' }),
      tsaChain: [tsa.intCertificate, tsa.rootCertificate].map((c) => Buffer.from(c.buffer, c.byteOffset, c.byteLength)),
    },
    async sign(data, signOptions = {}) {
      const claims = { iss: DEFAULT_ISSUER, sub: DEFAULT_SUBJECT, ...signOptions.claims };
      const token = [b64url({ alg: 'none' }), b64url(claims), 'sig'].join('.');
      const signer = new FulcioSigner({ fulcioBaseURL: url, identityProvider: { getToken: async () => token } });
      return build(signer, data, signOptions);
    },
    async signWithKey(data, privateKey, signOptions = {}) {
      const publicKey = createPublicKey(privateKey);
      const hint = createHash('sha256')
        .update(publicKey.export({ type: 'spki', format: 'der' }))
        .digest('hex');
      const signer: Signer = {
        sign: async (payload: Buffer) => ({
          signature: cryptoSign('sha256', payload, privateKey),
          key: { $case: 'publicKey', publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(), hint },
        }),
      };
      return build(signer, data, signOptions, publicKey.export({ type: 'spki', format: 'der' }));
    },
    async signWithCertificate(data, privateKey, certificatePem, signOptions = {}) {
      const signer: Signer = {
        sign: async (payload: Buffer) => ({
          signature: cryptoSign('sha256', payload, privateKey),
          key: { $case: 'x509Certificate', certificate: certificatePem },
        }),
      };
      return build(signer, data, signOptions);
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The parts of a bundle's JSON that logging to Rekor v2 reads and writes. */
interface RekorV2Bundle {
  messageSignature: { messageDigest: { digest: string }; signature: string };
  verificationMaterial: {
    certificate?: { rawBytes: string };
    tlogEntries: unknown[];
  };
}

export interface TrustedRootParts {
  ca: KeylessServices;
  ctlog: KeylessServices;
  tlog: KeylessServices;
  tsa: KeylessServices;
}

/**
 * A trusted_root.json (as JSON) trusting each kind of service from the fixture named in
 * `parts` (all the same fixture for the happy path). `start` is every entry's start of
 * validity (default: a minute before the earliest clock); `edit` changes the JSON last.
 */
export function trustedRootJson(
  parts: KeylessServices | (Partial<TrustedRootParts> & { base: KeylessServices }),
  options: { start?: Date; end?: Date; edit?: (root: Record<string, unknown[]>) => void } = {},
): Record<string, unknown> {
  const base = 'base' in parts ? parts.base : parts;
  const pick = (kind: keyof TrustedRootParts) => ('base' in parts ? (parts[kind] ?? base) : base);
  const start = (options.start ?? new Date(base.clock.getTime() - 3600_000)).toISOString();
  const validFor = options.end ? { start, end: options.end.toISOString() } : { start };
  const log = (key: Buffer, url: string) => ({
    baseUrl: url,
    hashAlgorithm: 'SHA2_256',
    publicKey: { rawBytes: key.toString('base64'), keyDetails: 'PKIX_ECDSA_P256_SHA_256', validFor },
    logId: { keyId: createHash('sha256').update(key).digest('base64') },
  });
  const authority = (certs: Buffer[], url: string) => ({
    subject: { organization: 'apx-test', commonName: 'apx-test' },
    uri: url,
    certChain: { certificates: certs.map((c) => ({ rawBytes: c.toString('base64') })) },
    validFor,
  });
  const root: Record<string, unknown[]> = {
    tlogs: [
      log(pick('tlog').material.tlogKey, pick('tlog').url),
      log(pick('tlog').material.tlogV2Key, `https://${REKOR_V2_ORIGIN}`),
    ],
    certificateAuthorities: [authority([pick('ca').material.caRoot], pick('ca').url)],
    ctlogs: [log(pick('ctlog').material.ctlogKey, pick('ctlog').url)],
    timestampAuthorities: [authority(pick('tsa').material.tsaChain, pick('tsa').url)],
  };
  options.edit?.(root);
  return { mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1', ...root };
}
