import { crc32c, isApxError, PublicKey, SignatureVerifier } from '@apx/core';
import type { protos, SecretManagerServiceClient } from '@google-cloud/secret-manager';
import { WorkerError, WorkerErrorCode } from './error.js';
import { type RefreshingKeyOptions, RefreshingKeyProvider, type TrustedKeyInfo } from './refreshing-key.js';

/** `APX_PUBLIC_KEY` values read from GCP Secret Manager: `projects/P/secrets/S/versions/V` (V may be `latest`). */
export const SECRET_VERSION_REF = /^projects\/[^/]+\/secrets\/[^/]+\/versions\/[^/]+$/;

/** What the official client's constructor accepts (endpoint, port, credentials, sslCreds...). */
export type SecretManagerClientOptions = NonNullable<ConstructorParameters<typeof SecretManagerServiceClient>[0]>;

export interface SecretManagerKeyOptions extends RefreshingKeyOptions {
  /** Deadline of one read of the secret, retries included. Default 10 s. */
  timeoutMs?: number;
  /** Options for the official client: endpoint, port, credentials (default: Application Default Credentials). */
  clientOptions?: SecretManagerClientOptions;
}

export const DEFAULT_SECRET_TIMEOUT_MS = 10_000;
/** Our own deadline, a little after the client's: a backstop should the client not honour its timeout. */
const GUARD_MS = 1000;

/** gRPC status names as Go prints them (`rpc error: code = PermissionDenied desc = ...`), by status number. */
const GRPC_CODE_NAMES = [
  'OK',
  'Canceled',
  'Unknown',
  'InvalidArgument',
  'DeadlineExceeded',
  'NotFound',
  'AlreadyExists',
  'PermissionDenied',
  'ResourceExhausted',
  'FailedPrecondition',
  'Aborted',
  'OutOfRange',
  'Unimplemented',
  'Internal',
  'Unavailable',
  'DataLoss',
  'Unauthenticated',
] as const;

/** CRC-32C, the checksum Secret Manager returns as `payload.dataCrc32c` (shared with the KMS signer). */
export { crc32c } from '@apx/core';

function secretName(ref: string): string {
  return ref.slice(0, ref.indexOf('/versions/'));
}

function shortSecretId(ref: string): string {
  return secretName(ref).split('/')[3] ?? ref;
}

/** `public key not available: <where it looked> (<why>)`, as keys.ts says it for files. */
function unavailable(ref: string, why: string, cause: unknown, hint: string): WorkerError {
  return new WorkerError(WorkerErrorCode.PUBLIC_KEY_UNAVAILABLE, `public key not available: ${ref} (${why})`, { hint, cause });
}

function replaceHint(ref: string): string {
  const project = ref.split('/')[1] ?? '';
  return `the secret must hold the PEM public key (cosign.pub): gcloud secrets versions add ${shortSecretId(ref)} --project=${project} --data-file=cosign.pub`;
}

function hintFor(ref: string, code: number | undefined, reason: string): string {
  const secret = shortSecretId(ref);
  const project = ref.split('/')[1] ?? '';
  const grant =
    `grant roles/secretmanager.secretAccessor on the secret to the worker's service account: ` +
    `gcloud secrets add-iam-policy-binding ${secret} --project=${project} ` +
    `--member=serviceAccount:apx-worker@${project}.iam.gserviceaccount.com --role=roles/secretmanager.secretAccessor`;
  const name = `check the secret name in APX_PUBLIC_KEY (${ref}): gcloud secrets versions list ${secret} --project=${project}`;
  // No gRPC status: the client failed before the call, most often without credentials.
  if (code === undefined && /credential/i.test(reason)) code = 16;
  switch (code) {
    case 7:
      return grant;
    case 5:
      return `${name}; the version may also be disabled or destroyed`;
    case 16:
      return CREDENTIALS_HINT;
    case 4:
    case 14:
      return 'Secret Manager did not answer in time; check the network path to secretmanager.googleapis.com';
    default:
      return `${name}; ${grant}`;
  }
}

const NO_CREDENTIALS = /could not load the default credentials/i;
const NO_CREDENTIALS_REASON =
  'no Google credentials found; set GOOGLE_APPLICATION_CREDENTIALS or run the worker with a service account (workload identity)';

const CREDENTIALS_HINT =
  'the worker has no valid Google credentials: attach a service account (workload identity) or set GOOGLE_APPLICATION_CREDENTIALS';

/** The client could not get Google credentials (before any call): the runbook's words, the reason, where credentials come from. */
function credentialsFailure(err: unknown): WorkerError {
  const message = err instanceof Error ? err.message : String(err);
  const reason = NO_CREDENTIALS.test(message) ? NO_CREDENTIALS_REASON : `cannot get Google credentials: ${message}`;
  return new WorkerError(WorkerErrorCode.PUBLIC_KEY_UNAVAILABLE, `failed to access secret: ${reason}`, {
    hint: CREDENTIALS_HINT,
    cause: err,
  });
}

/** `failed to access secret: <the provider's reason>` (the runbook's words), PUBLIC_KEY_UNAVAILABLE. */
function accessFailure(ref: string, err: unknown): WorkerError {
  const e = err as { code?: unknown; details?: unknown; message?: unknown } | null | undefined;
  const code = typeof e?.code === 'number' && Number.isInteger(e.code) ? e.code : undefined;
  const name = code === undefined ? undefined : GRPC_CODE_NAMES[code];
  let reason: string;
  if (name !== undefined) {
    const desc = typeof e?.details === 'string' && e.details !== '' ? e.details : typeof e?.message === 'string' ? e.message : '';
    reason = `rpc error: code = ${name} desc = ${desc}`;
  } else {
    reason = err instanceof Error ? err.message : String(err);
    // google-auth-library's words, with a link, when Application Default Credentials find nothing.
    if (NO_CREDENTIALS.test(reason)) reason = NO_CREDENTIALS_REASON;
  }
  return new WorkerError(WorkerErrorCode.PUBLIC_KEY_UNAVAILABLE, `failed to access secret: ${reason}`, {
    hint: hintFor(ref, code, reason),
    cause: err,
  });
}

function deadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = Object.assign(new Error(`no answer from Secret Manager within ${ms} ms`), { code: 4 });
      reject(err);
    }, ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

/**
 * The trusted key read from a Secret Manager secret version whose payload is the PEM public
 * key (`gcloud secrets create apx-artifact-pubkey --data-file=cosign.pub`). The official
 * client is imported on first use only (it is heavy). The verifier is cached and the secret
 * re-read when older than the refresh interval, so rotating the key (adding a version, with
 * `latest`) needs no restart; a failed refresh keeps the last good key and is reported to
 * `onRefreshError`. Concurrent callers share one read.
 */
export class SecretManagerKeyProvider extends RefreshingKeyProvider {
  private readonly timeoutMs: number;
  private readonly options: SecretManagerKeyOptions;
  private client: Promise<SecretManagerServiceClient> | undefined;

  constructor(ref: string, options: SecretManagerKeyOptions = {}) {
    if (!SECRET_VERSION_REF.test(ref)) {
      throw new WorkerError(WorkerErrorCode.CONFIG_INVALID, `invalid APX_PUBLIC_KEY="${ref}"`, {
        hint: 'a Secret Manager reference is projects/PROJECT/secrets/SECRET/versions/VERSION (VERSION may be latest)',
      });
    }
    super(ref, options);
    this.options = options;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_SECRET_TIMEOUT_MS;
  }

  /** Closes the client's channel; later calls open a new one. */
  async close(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client) await client.then((c) => c.close()).catch(() => undefined);
  }

  protected failure(err: unknown): WorkerError {
    return accessFailure(this.ref, err);
  }

  /**
   * The client, connected. The generated client starts its connection (Google credentials
   * included) lazily, inside every method, and rethrows a failure there from a promise
   * nobody handles: without credentials, calling accessSecretVersion ends the process with
   * an unhandled rejection. So the connection is made here first, awaited, and a failure
   * becomes this read's error; a failed client is closed and never used, the next read
   * starts a new one (credentials may appear: a metadata server starting late).
   */
  private connect(): Promise<SecretManagerServiceClient> {
    if (this.client) return this.client;
    const connecting = (async () => {
      let sdk: typeof import('@google-cloud/secret-manager');
      try {
        sdk = await import('@google-cloud/secret-manager');
      } catch (err) {
        // An optional peer dependency: most workers read their key from a file or a trust
        // repository and never install it.
        const code = (err as { code?: unknown }).code;
        const missing = code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND';
        throw new WorkerError(
          WorkerErrorCode.PUBLIC_KEY_UNAVAILABLE,
          missing
            ? 'failed to access secret: Secret Manager keys need the @google-cloud/secret-manager package, which is not installed'
            : `failed to access secret: cannot load @google-cloud/secret-manager (${(err as Error).message})`,
          { hint: 'npm install @google-cloud/secret-manager (npm install -g beside a global apx)', cause: err },
        );
      }
      const client = new sdk.SecretManagerServiceClient(this.options.clientOptions);
      try {
        await deadline(client.initialize(), this.timeoutMs + GUARD_MS);
      } catch (err) {
        await client.close().catch(() => undefined);
        throw typeof (err as { code?: unknown } | undefined)?.code === 'number'
          ? accessFailure(this.ref, err)
          : credentialsFailure(err);
      }
      return client;
    })();
    this.client = connecting;
    connecting.catch(() => {
      if (this.client === connecting) this.client = undefined;
    });
    return connecting;
  }

  protected async read(): Promise<{ verifier: SignatureVerifier; info: TrustedKeyInfo }> {
    let response: protos.google.cloud.secretmanager.v1.IAccessSecretVersionResponse;
    try {
      const client = await this.connect();
      [response] = await deadline(
        client.accessSecretVersion({ name: this.ref }, { timeout: this.timeoutMs }),
        this.timeoutMs + GUARD_MS,
      );
    } catch (err) {
      if (err instanceof WorkerError) throw err;
      throw accessFailure(this.ref, err);
    }
    const version = response.name || this.ref;
    const raw = response.payload?.data;
    const data = typeof raw === 'string' ? Buffer.from(raw, 'base64') : raw ? Buffer.from(raw) : Buffer.alloc(0);
    try {
      const expected = response.payload?.dataCrc32c;
      if (expected !== undefined && expected !== null && String(expected) !== String(crc32c(data))) {
        throw unavailable(
          this.ref,
          `the payload of ${version} does not match its CRC32C checksum`,
          undefined,
          replaceHint(this.ref),
        );
      }
      let publicKey: PublicKey;
      try {
        publicKey = PublicKey.fromPem(data.toString('utf8'), `secret ${version}`);
      } catch (err) {
        // The reason names the PEM type at most, never the payload (it might be a private key).
        const why = isApxError(err) ? err.message : 'not a PEM public key';
        throw unavailable(this.ref, why, err, replaceHint(this.ref));
      }
      return {
        verifier: new SignatureVerifier(publicKey),
        info: { ref: this.ref, version, keyId: publicKey.keyId },
      };
    } finally {
      data.fill(0); // the payload should be a public key; if someone stored a private key, do not keep it around
      if (raw instanceof Uint8Array) raw.fill(0);
    }
  }
}
