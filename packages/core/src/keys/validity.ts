import { CoreErrorCode, VerificationError } from '../error.js';

/** A trusted key's validity window in the trust policy: it may sign from notBefore until notAfter. */
export interface KeyValidity {
  notBefore?: Date | undefined;
  notAfter?: Date | undefined;
}

/** A verified time: an RFC 3161 timestamp or a Rekor integrated time (see keyless/sigstore-run.ts). */
export interface VerifiedTime {
  time: Date;
  source: 'timestamp-authority' | 'transparency-log';
}

const inWindow = (w: KeyValidity, t: Date) =>
  (w.notBefore === undefined || w.notBefore.getTime() <= t.getTime()) &&
  (w.notAfter === undefined || t.getTime() <= w.notAfter.getTime());

const showWindow = (w: KeyValidity) =>
  `${w.notBefore ? w.notBefore.toISOString() : '(no start)'} to ${w.notAfter ? w.notAfter.toISOString() : '(no end)'}`;

/**
 * Judges a key's validity window at trusted times only. With verified times (a TSA
 * timestamp, a Rekor integrated time), each must fall inside the window: a retired key's
 * old signature, timestamped while it was valid, still verifies. Without one, the window is
 * judged at `now`: the signing time a signer writes into its own statement proves nothing
 * (whoever holds a stolen retired key can write any date), so a key outside its window now
 * is refused.
 */
export function checkKeyValidity(keyId: string, window: KeyValidity, times: readonly VerifiedTime[], now: Date): void {
  if (window.notBefore === undefined && window.notAfter === undefined) return;
  if (times.length > 0) {
    const outside = times.find((t) => !inWindow(window, t.time));
    if (outside) {
      const by = outside.source === 'timestamp-authority' ? 'an RFC 3161 timestamp' : 'the transparency log';
      throw new VerificationError(
        CoreErrorCode.KEY_OUTSIDE_VALIDITY,
        `signing key ${keyId} used outside its validity window: ${by} dates the signature ${outside.time.toISOString()}, the key is valid ${showWindow(window)}`,
        { hint: 'sign again with a key the trust policy currently trusts' },
      );
    }
    return;
  }
  if (!inWindow(window, now)) {
    throw new VerificationError(
      CoreErrorCode.KEY_OUTSIDE_VALIDITY,
      `signing key ${keyId} is outside its validity window (${showWindow(window)}) and the signature has no trusted timestamp proving it was made inside it; the signer's own signing time is not trusted`,
      {
        hint: 'sign with a key valid now, or with a timestamp authority (--timestamp-server-url) so that signatures outlive a key retirement',
      },
    );
  }
}
