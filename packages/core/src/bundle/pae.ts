/**
 * DSSE's pre-authentication encoding (DSSE protocol, v1): the bytes a DSSE signature is over,
 * `DSSEv1 <len(type)> <type> <len(payload)> <payload>` with lengths in ASCII decimal bytes.
 * Spelled here so that signing and verifying a DSSE envelope need no Sigstore library.
 */
export function dssePreAuthEncoding(payloadType: string, payload: Uint8Array): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${type.length} `, 'ascii'),
    type,
    Buffer.from(` ${payload.length} `, 'ascii'),
    payload,
  ]);
}
