/**
 * The ids of a WebAssembly binary's sections, in order (binary format §5.5.2: after the
 * 8-byte preamble, each section is one id byte and a LEB128 u32 size). The JS API has no
 * way to ask whether a module has a start function, so the verifier reads the section
 * list itself. Call it on bytes WebAssembly already validated: the framing is then sound.
 */
export function wasmSectionIds(bytes: Uint8Array): number[] {
  const ids: number[] = [];
  let at = 8;
  while (at < bytes.length) {
    const id = bytes[at++] as number;
    let size = 0;
    let shift = 0;
    let byte: number;
    do {
      byte = bytes[at++] as number;
      size += (byte & 0x7f) * 2 ** shift;
      shift += 7;
    } while (byte & 0x80 && shift < 35);
    ids.push(id);
    at += size;
  }
  return ids;
}

/** Section id of the start function (binary format §5.5.11). */
export const START_SECTION = 8;
