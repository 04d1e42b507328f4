import { StorageError, StorageErrorCode } from './error.js';
import { ARTIFACT_SUFFIX } from './names.js';

/** The runbook's message for an artifact, a plain one for signatures and bundles. */
export function tooLarge(storeUrl: string, name: string, size: number, max: number, atLeast = false): StorageError {
  const n = `${atLeast ? 'more than ' : ''}${size}`;
  const message = name.endsWith(ARTIFACT_SUFFIX)
    ? `artifact too large: ${size} bytes (max: ${max})`
    : `object too large: ${name} in ${storeUrl}: ${n} bytes (max: ${max})`;
  return new StorageError(StorageErrorCode.TOO_LARGE, message, {
    hint: `${name} in ${storeUrl} exceeds the size cap; check that the right file was published (policy artifacts are capped at 10 MiB)`,
  });
}

export interface CappedReadOptions {
  storeUrl: string;
  name: string;
  maxBytes: number;
  /** The length the server announced (Content-Length, object metadata), if any. */
  expectedLength?: number | undefined;
  signal?: AbortSignal | undefined;
  /** Abandon the body when no byte arrives for this long. */
  idleMs?: number | undefined;
}

/**
 * Reads a body, refusing it as soon as it is known to exceed the cap: before the first
 * byte when the announced length is too large, else when the running count passes the cap
 * (tuf-js's fetcher does the same). A body shorter or longer than announced is an
 * INTEGRITY error: a truncated download must never look like a smaller artifact.
 * `onAbort` stops the underlying transfer.
 */
export async function readCapped(
  body: AsyncIterable<Uint8Array>,
  options: CappedReadOptions,
  onAbort?: () => void,
): Promise<Buffer> {
  const { storeUrl, name, maxBytes, expectedLength } = options;
  if (expectedLength !== undefined && expectedLength > maxBytes) {
    onAbort?.();
    throw tooLarge(storeUrl, name, expectedLength, maxBytes);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  let stalled = false;
  // Some clients (the GCS client's fetch) never report a connection cut mid-body: a body
  // with no bytes for idleMs is abandoned, and the abort destroys the transfer.
  let idle: NodeJS.Timeout | undefined;
  const arm = () => {
    if (options.idleMs === undefined) return;
    clearTimeout(idle);
    idle = setTimeout(() => {
      stalled = true;
      onAbort?.();
    }, options.idleMs);
  };
  const abort = () => onAbort?.();
  options.signal?.addEventListener('abort', abort, { once: true });
  try {
    arm();
    for await (const chunk of body) {
      options.signal?.throwIfAborted();
      total += chunk.byteLength;
      // Without an announced length the count so far is all we know: a lower bound.
      if (total > maxBytes) throw tooLarge(storeUrl, name, total, maxBytes);
      chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      arm();
    }
    if (stalled) throw new Error('stalled');
  } catch (err) {
    onAbort?.();
    if (err instanceof StorageError) throw err;
    if (stalled && expectedLength !== undefined) {
      throw new StorageError(
        StorageErrorCode.INTEGRITY,
        `incomplete download of ${name} from ${storeUrl}: got ${total} of ${expectedLength} bytes, then nothing for ${options.idleMs} ms`,
        { hint: 'the connection was cut or stalled mid-transfer; retry, and check the store if it persists', cause: err },
      );
    }
    // The request's own deadline (fetch's signal) or the caller's: either way, a timeout.
    const timedOut =
      (err as Error | undefined)?.name === 'TimeoutError' ||
      (options.signal?.aborted === true && (options.signal.reason as Error | undefined)?.name === 'TimeoutError');
    if (stalled || timedOut) {
      throw new StorageError(
        StorageErrorCode.UNREACHABLE,
        `download of ${name} from ${storeUrl} timed out after ${total} bytes`,
        {
          hint: 'the store is slow or stalled; retry, or raise the timeout',
          cause: err,
        },
      );
    }
    if (options.signal?.aborted) throw options.signal.reason;
    throw new StorageError(StorageErrorCode.INTEGRITY, `download of ${name} from ${storeUrl} was cut after ${total} bytes`, {
      hint: 'the connection broke mid-transfer; retry, and check the store if it persists',
      cause: err,
    });
  } finally {
    clearTimeout(idle);
    options.signal?.removeEventListener('abort', abort);
  }
  if (expectedLength !== undefined && total !== expectedLength) {
    throw truncated(storeUrl, name, total, expectedLength);
  }
  return Buffer.concat(chunks, total);
}

export function truncated(storeUrl: string, name: string, got: number, expected: number): StorageError {
  return new StorageError(
    StorageErrorCode.INTEGRITY,
    `incomplete download of ${name} from ${storeUrl}: got ${got} of ${expected} bytes`,
    { hint: 'the connection was cut or the store is misbehaving; retry, and check the store if it persists' },
  );
}

/** An AbortSignal that fires after `ms` or when `parent` fires, whichever comes first. */
export function deadline(ms: number, parent?: AbortSignal): AbortSignal {
  const timeout = AbortSignal.timeout(ms);
  return parent ? AbortSignal.any([parent, timeout]) : timeout;
}
