import { SignError, SignErrorCode } from './error.js';

/** The services one keyless signature uses, as a Sigstore signing config names them. */
export interface SigningServices {
  fulcioUrl?: string;
  rekorUrl?: string;
  /** 1 (Rekor v1, preferred: every verifier APX supports reads it) or 2. */
  rekorApiVersion?: number;
  tsaUrl?: string;
}

interface ServiceEntry {
  url?: unknown;
  majorApiVersion?: unknown;
  validFor?: { start?: unknown; end?: unknown };
}

/**
 * The services of a Sigstore signing config (`application/vnd.dev.sigstore.signingconfig.v0.2+json`,
 * what cosign's --signing-config reads): for each of Fulcio, Rekor and the TSA, the newest
 * entry valid now whose API version APX speaks (Fulcio v1; Rekor v1, else v2; TSA v1).
 */
export function signingServicesFromConfig(text: string, source: string, now = new Date()): SigningServices {
  const invalid = (why: string) =>
    new SignError(SignErrorCode.SIGNING_CONFIG_INVALID, `signing config ${source} is not usable: ${why}`, {
      hint: 'pass a Sigstore signing config (signingconfig.v0.2 JSON), or the service URLs with --fulcio-url, --rekor-url, --timestamp-server-url',
    });
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(text);
  } catch {
    throw invalid('not JSON');
  }
  if (typeof config !== 'object' || config === null) throw invalid('not a JSON object');
  const media = config.mediaType;
  if (typeof media !== 'string' || !media.startsWith('application/vnd.dev.sigstore.signingconfig')) {
    throw invalid(`mediaType ${JSON.stringify(media)} is not a Sigstore signing config`);
  }
  const pick = (field: string, versions: number[]): { url: string; version: number } | undefined => {
    const list = config[field];
    if (list === undefined) return undefined;
    if (!Array.isArray(list)) throw invalid(`${field} is not a list`);
    const usable = (list as ServiceEntry[])
      .filter((e) => typeof e?.url === 'string' && validNow(e, now))
      .map((e) => ({
        url: e.url as string,
        version: Number(e.majorApiVersion ?? 1),
        start: Date.parse(String(e.validFor?.start)),
      }));
    for (const version of versions) {
      const newest = usable.filter((e) => e.version === version).sort((a, b) => b.start - a.start)[0];
      if (newest) return { url: newest.url, version };
    }
    return undefined;
  };
  const ca = pick('caUrls', [1]);
  const rekor = pick('rekorTlogUrls', [1, 2]);
  const tsa = pick('tsaUrls', [1]);
  return {
    ...(ca ? { fulcioUrl: ca.url } : {}),
    ...(rekor ? { rekorUrl: rekor.url, rekorApiVersion: rekor.version } : {}),
    ...(tsa ? { tsaUrl: tsa.url } : {}),
  };
}

function validNow(entry: ServiceEntry, now: Date): boolean {
  const start = Date.parse(String(entry.validFor?.start));
  if (Number.isNaN(start) || start > now.getTime()) return false;
  if (entry.validFor?.end === undefined) return true;
  const end = Date.parse(String(entry.validFor.end));
  return !Number.isNaN(end) && end > now.getTime();
}
