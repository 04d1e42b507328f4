import { decodeStdBase64 } from '../base64.js';

export interface PemBlock {
  label: string;
  der: Buffer;
}

const BEGIN = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n/;

/**
 * The first PEM block of a text, as Go's pem.Decode finds it: text before the block is
 * skipped, headers are not allowed (cosign writes none). Returns undefined when there is
 * no well-formed block, so callers can say what they expected.
 */
export function decodeFirstPem(text: string): PemBlock | undefined {
  const begin = BEGIN.exec(text);
  if (!begin) return undefined;
  const label = begin[1] as string;
  const bodyStart = begin.index + begin[0].length;
  const endMarker = `-----END ${label}-----`;
  const end = text.indexOf(endMarker, bodyStart);
  if (end < 0) return undefined;
  const body = text.slice(bodyStart, end).replace(/[ \t]/g, '');
  if (body.includes(':')) return undefined; // PEM headers: not something cosign produces
  const der = decodeStdBase64(body.trimEnd());
  if (!der || der.length === 0) return undefined;
  return { label, der };
}

/** PEM as Go's pem.EncodeToMemory writes it: 64-column base64 lines and one final LF. */
export function encodePem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
