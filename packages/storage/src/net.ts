import { StorageError, StorageErrorCode } from './error.js';

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EPIPE',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_SOCKET',
]);

/** True for failures to reach the store at all: refused, reset, DNS, timeouts. */
export function isNetworkFailure(err: unknown): boolean {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const { code, name } = e as { code?: unknown; name?: unknown };
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return true;
    if (name === 'TimeoutError' || name === 'AbortError' || name === 'RequestTimeout') return true;
    if (Array.isArray((e as { errors?: unknown }).errors) && (e as AggregateError).errors.some(isNetworkFailure)) return true;
  }
  return false;
}

/** A short reason from an error chain, without stack traces. */
export function reason(err: unknown): string {
  const parts: string[] = [];
  for (let e = err, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const m = (e as { message?: unknown; code?: unknown }).message;
    const code = (e as { code?: unknown }).code;
    const text = typeof m === 'string' && m !== '' ? m : typeof code === 'string' ? code : '';
    if (text && !parts.some((p) => p.includes(text))) parts.push(text);
  }
  return parts.join(': ') || String(err);
}

export function unreachable(storeUrl: string, err: unknown, timeoutMs: number): StorageError {
  const timedOut = (err as { name?: string }).name === 'TimeoutError' || /timed? ?out/i.test(reason(err));
  return new StorageError(
    StorageErrorCode.UNREACHABLE,
    timedOut ? `store ${storeUrl} did not answer within ${timeoutMs} ms` : `cannot reach store ${storeUrl}: ${reason(err)}`,
    {
      hint: 'check the store URL, the network and that the service is running; raise the timeout if the store is slow',
      cause: err,
    },
  );
}

export function denied(storeUrl: string, status: number | string, what: string): StorageError {
  return new StorageError(StorageErrorCode.DENIED, `store ${storeUrl} refused ${what} (${status})`, {
    hint: 'check the credentials this process uses for the store and their permissions',
  });
}

export function requestFailed(storeUrl: string, what: string, err: unknown, hint?: string): StorageError {
  return new StorageError(StorageErrorCode.REQUEST_FAILED, `store ${storeUrl}: ${what} failed: ${reason(err)}`, {
    hint: hint ?? 'check the store URL and its configuration; retry if the store reported a transient error',
    cause: err,
  });
}
