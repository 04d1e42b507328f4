// Store URLs are shown everywhere: error messages, the worker's logs, `/readyz` and
// `/v1/policies` (unauthenticated), the CLI's output. `openStore` refuses a URL that carries a
// credential, so an opened store's URL holds none; this function is the second line: whatever
// string is shown as a store URL goes through it first. No imports: the worker's settings
// check and the CLI load it without the store backends (`@apx/storage/redact`).

/** What replaces a hidden part. */
export const REDACTED = 'REDACTED';

/** A parameter name shown as it is (its value is hidden); any other name is hidden with its value. */
export const PLAIN_NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,40}$/;

/** Parameters a store URL may carry, whose values are shown as they are (none holds a secret). */
const SHOWN_PARAMETERS = new Set(['region', 'project']);

/**
 * A store URL as it may be shown: the userinfo (`user:password@`), the value of every query
 * parameter except `region` and `project`, and the fragment are replaced by REDACTED. The
 * `endpoint` parameter is shown with its own userinfo, query and fragment redacted, so the
 * host stays visible. A URL with nothing to hide is returned unchanged, character for
 * character; a local path (no `scheme://`) is returned as it is. Works on strings that are
 * not valid URLs too (over-redacting rather than showing a secret).
 */
export function redactStoreUrl(url: string): string {
  return redact(url, true);
}

function redact(url: string, storeLevel: boolean): string {
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(url)?.[0];
  if (scheme === undefined) return url;
  let rest = url.slice(scheme.length);
  const parses = URL.canParse(url);
  // Unparsable (a password holding `/`, `#` or `?` makes it so): everything before the last
  // `@` may be userinfo, so all of it is hidden.
  if (!parses && rest.includes('@')) rest = `${REDACTED}${rest.slice(rest.lastIndexOf('@'))}`;
  const m = /^([^?#]*)(\?[^#]*)?(#[\s\S]*)?$/.exec(rest) as RegExpExecArray;
  const [, beforeQuery = '', query, fragment] = m;
  return `${scheme}${parses ? redactUserinfo(scheme, beforeQuery) : beforeQuery}${query === undefined ? '' : redactQuery(query, storeLevel)}${fragment === undefined ? '' : `#${REDACTED}`}`;
}

/** The authority's userinfo, up to its last `@`; the authority ends at `/` (or a backslash for http and https). */
function redactUserinfo(scheme: string, rest: string): string {
  const end = rest.search(/^https?:/i.test(scheme) ? /[/\\]/ : /\//);
  const authority = end === -1 ? rest : rest.slice(0, end);
  const at = authority.lastIndexOf('@');
  return at === -1 ? rest : `${REDACTED}${rest.slice(at)}`;
}

function redactQuery(query: string, storeLevel: boolean): string {
  if (query === '?') return query;
  const items = query
    .slice(1)
    .split('&')
    .map((item) => {
      const eq = item.indexOf('=');
      // A bare item (`?AKIA...`) may be the secret itself.
      if (eq === -1) return item === '' ? item : REDACTED;
      const name = decode(item.slice(0, eq));
      // A name that is not a plain identifier may be the secret itself.
      if (name === undefined || !PLAIN_NAME.test(name)) return REDACTED;
      if (storeLevel && SHOWN_PARAMETERS.has(name)) return item;
      if (storeLevel && name === 'endpoint') {
        const value = decode(item.slice(eq + 1));
        if (value === undefined) return `${item.slice(0, eq)}=${REDACTED}`;
        const shown = redact(value, false);
        return shown === value ? item : `${item.slice(0, eq)}=${shown}`;
      }
      return `${item.slice(0, eq)}=${REDACTED}`;
    });
  return `?${items.join('&')}`;
}

function decode(text: string): string | undefined {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}
