/**
 * Strict standard base64 (RFC 4648 §4, padded), as Go's base64.StdEncoding reads it.
 * Node's Buffer.from(s, 'base64') silently skips junk, which would let a corrupted
 * signature or key decode to something; here invalid input is undefined instead.
 * Like Go's decoder, CR and LF are ignored (a signature saved with `> file` ends in LF).
 */
const STD_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function decodeStdBase64(text: string): Buffer | undefined {
  const compact = text.includes('\n') || text.includes('\r') ? text.replace(/[\r\n]/g, '') : text;
  if (!STD_BASE64.test(compact)) return undefined;
  return Buffer.from(compact, 'base64');
}
