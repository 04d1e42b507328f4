import { readFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { KmsError, KmsErrorCode } from '../error.js';

/** The environment the URI's module path and PIN fall back to (cosign's variable names). */
export type Pkcs11Env = Readonly<Record<string, string | undefined>>;

/**
 * A PKCS#11 key reference, RFC 7512 as cosign reads it (pkg/cosign/pkcs11key): which token
 * (label and/or slot id), which key (label and/or CKA_ID), the module to load and the PIN.
 */
export interface Pkcs11Uri {
  /** CKA_LABEL of the token (`token=`). */
  token: string | undefined;
  /** The slot's CK_SLOT_ID (`slot-id=`), a decimal number. */
  slotId: bigint | undefined;
  /** CKA_LABEL of the key (`object=`). */
  object: string | undefined;
  /** CKA_ID of the key (`id=`), as bytes. */
  id: Buffer | undefined;
  /** The PKCS#11 module (shared library), from `module-path=` or COSIGN_PKCS11_MODULE_PATH. */
  modulePath: string;
  /** The user PIN, from `pin-value=` or else COSIGN_PKCS11_PIN. Never printed. */
  pin: string | undefined;
  /** `pin-source=`: a file holding the PIN, read by `readPin` (used when pin-value is absent). */
  pinSource: string | undefined;
  /** The reference as written minus `pin-value`: what messages and audit records show. */
  redacted: string;
}

const SCHEME = 'pkcs11:';
const HINT = 'write pkcs11:token=LABEL;object=KEY-LABEL?module-path=/abs/path/module.so (see RFC 7512)';

interface Attribute {
  name: string;
  value: Buffer;
}

/** A segment of the reference: kept as written for the redacted form, decoded for use. */
interface Segment {
  raw: string;
  attribute: Attribute | undefined;
}

/**
 * Percent-decoding to bytes, as Go's url.QueryUnescape (which cosign's parser uses): `%XX`
 * is a byte, `+` is a space, any other character its UTF-8 bytes. Bytes, not text, because
 * `id=` is binary. RFC 7512 reads `+` literally; `%2B` is a plus in both readings.
 */
function percentDecode(text: string): Buffer | undefined {
  const out: Buffer[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    if (c === '%') {
      const hex = text.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) return undefined;
      out.push(Buffer.of(Number.parseInt(hex, 16)));
      i += 3;
    } else {
      out.push(Buffer.from(c === '+' ? ' ' : c, 'utf8'));
      i += 1;
    }
  }
  return Buffer.concat(out);
}

function splitSegments(part: string): Segment[] {
  // cosign turns `;` into `&` in both parts before parsing, so either separates anywhere.
  return part
    .split(/[;&]/)
    .filter((raw) => raw !== '')
    .map((raw) => {
      const eq = raw.indexOf('=');
      const name = percentDecode(eq < 0 ? raw : raw.slice(0, eq));
      const value = percentDecode(eq < 0 ? '' : raw.slice(eq + 1));
      return { raw, attribute: name && value ? { name: name.toString('utf8'), value } : undefined };
    });
}

/**
 * The reference with every pin-value removed, as written otherwise. A segment that cannot
 * be decoded might be a disguised pin-value, so it is dropped too: nothing that could hold
 * the PIN survives.
 */
function redact(path: Segment[], query: Segment[] | undefined): string {
  const keep = (s: Segment) => s.attribute !== undefined && s.attribute.name !== 'pin-value';
  const pathText = path
    .filter(keep)
    .map((s) => s.raw)
    .join(';');
  const queryText = (query ?? [])
    .filter(keep)
    .map((s) => s.raw)
    .join('&');
  return `${SCHEME}${pathText}${queryText ? `?${queryText}` : ''}`;
}

/** A pkcs11: reference without its PIN, even a malformed one: what may be shown or logged. */
export function redactPkcs11Uri(ref: string): string {
  const rest = ref.slice(SCHEME.length).trim();
  const q = rest.indexOf('?');
  return redact(splitSegments(q < 0 ? rest : rest.slice(0, q)), q < 0 ? undefined : splitSegments(rest.slice(q + 1)));
}

function invalid(shown: string, why: string, hint = HINT): KmsError {
  return new KmsError(KmsErrorCode.KEY_REF_INVALID, `invalid PKCS#11 URI${shown ? ` ${shown}` : ''}: ${why}`, { hint });
}

/** Attributes by name; a repeated one is refused (RFC 7512 allows each at most once). */
function attributes(segments: Segment[], shown: string, where: string): Map<string, Buffer> {
  const map = new Map<string, Buffer>();
  for (const { attribute } of segments) {
    if (!attribute) throw invalid(shown, `a ${where} attribute has a malformed percent-encoding (use %XX)`);
    if (map.has(attribute.name)) throw invalid(shown, `the ${where} attribute ${attribute.name} appears twice`);
    map.set(attribute.name, attribute.value);
  }
  return map;
}

/** An attribute as text; empty counts as absent, as in cosign. */
function text(map: Map<string, Buffer>, name: string): string | undefined {
  const value = map.get(name);
  return value && value.length > 0 ? value.toString('utf8') : undefined;
}

/**
 * Parses `pkcs11:token=T;slot-id=N;object=O;id=%01?module-path=M&pin-value=P&pin-source=F`.
 * As in cosign: one of token/slot-id and one of object/id are required, the module path
 * falls back to COSIGN_PKCS11_MODULE_PATH and the PIN to COSIGN_PKCS11_PIN, and attributes
 * APX does not use (type, serial, ...) are ignored. `pin-source` is read by `readPin`, not
 * here, so that parsing stays free of I/O.
 */
export function parsePkcs11Uri(ref: string, env: Pkcs11Env = {}): Pkcs11Uri {
  if (!ref.startsWith(SCHEME)) throw invalid('', 'the reference does not start with pkcs11:');
  const rest = ref.slice(SCHEME.length).trim();
  const q = rest.indexOf('?');
  const pathSegments = splitSegments(q < 0 ? rest : rest.slice(0, q));
  const querySegments = q < 0 ? undefined : splitSegments(rest.slice(q + 1));
  const redacted = redactPkcs11Uri(ref);

  const path = attributes(pathSegments, redacted, 'path');
  const query = attributes(querySegments ?? [], redacted, 'query');

  const token = text(path, 'token');
  const slotText = text(path, 'slot-id');
  if (!token && !slotText) throw invalid(redacted, 'one of token and slot-id must be set');
  if (slotText !== undefined && !/^\d+$/.test(slotText)) {
    throw invalid(
      redacted,
      `slot-id ${JSON.stringify(slotText)} is not a number`,
      'slot-id is a decimal slot number; or name the token by token=LABEL',
    );
  }
  const object = text(path, 'object');
  const idBytes = path.get('id');
  const id = idBytes && idBytes.length > 0 ? idBytes : undefined;
  if (!object && !id) throw invalid(redacted, 'one of object and id must be set');

  const modulePath = text(query, 'module-path') ?? (env.COSIGN_PKCS11_MODULE_PATH || undefined);
  if (!modulePath) {
    throw invalid(
      redacted,
      'no PKCS#11 module: module-path or COSIGN_PKCS11_MODULE_PATH must be set',
      'add ?module-path=/abs/path/module.so or export COSIGN_PKCS11_MODULE_PATH (e.g. /usr/lib/softhsm/libsofthsm2.so)',
    );
  }
  if (!isAbsolute(modulePath)) {
    throw invalid(redacted, `module path ${modulePath} is not absolute`, 'give the absolute path of the PKCS#11 module');
  }
  const pinSource = text(query, 'pin-source');
  // The URI's own PIN or PIN file wins over the environment, as module-path does.
  const pin = text(query, 'pin-value') ?? (pinSource ? undefined : env.COSIGN_PKCS11_PIN || undefined);
  return {
    token,
    slotId: slotText === undefined ? undefined : BigInt(slotText),
    object,
    id,
    modulePath,
    pin,
    pinSource,
    redacted,
  };
}

/**
 * The PIN to log in with: the URI's (or the environment's) value, else the first line of the
 * file `pin-source` names (`file:/abs/path` or a plain path; RFC 7512 leaves its syntax to
 * the application). Undefined when there is none; the token may not need one.
 */
export function readPin(uri: Pkcs11Uri): string | undefined {
  if (uri.pin !== undefined || uri.pinSource === undefined) return uri.pin;
  const file = uri.pinSource.startsWith('file:') ? uri.pinSource.slice('file:'.length).replace(/^\/\/(?=\/)/, '') : uri.pinSource;
  let content: string;
  try {
    content = readFileSync(file, 'utf8');
  } catch (err) {
    throw new KmsError(
      KmsErrorCode.KMS_FAILED,
      `${uri.redacted}: cannot read the PIN file ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
      {
        hint: 'pin-source names a file holding the PIN; or set COSIGN_PKCS11_PIN',
        cause: err,
      },
    );
  }
  return content.split(/\r?\n/, 1)[0] as string;
}
