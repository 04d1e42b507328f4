/**
 * Client-address parsing for the host (DESIGN.md §7: the host parses, the policy decides).
 * Returns 16 bytes with the family; IPv4-mapped IPv6 (::ffff:a.b.c.d) is reported as IPv4
 * so that an IPv4 allow-list also covers dual-stack sockets. Anything else is `undefined`:
 * an unparsable address matches no CIDR and fails an allow-list (fail closed).
 */
export interface ParsedIp {
  family: 4 | 6;
  /** 16 bytes; for IPv4 the address is in bytes 0..3 and the rest is zero. */
  bytes: Uint8Array;
}

const V4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
const HEX = /^[0-9a-fA-F]{1,4}$/;

function parseV4(text: string, out: Uint8Array, at: number): boolean {
  const m = V4.exec(text);
  if (!m) return false;
  for (let i = 0; i < 4; i++) {
    const part = m[i + 1] as string;
    // Leading zeros are refused: some stacks read them as octal.
    if (part.length > 1 && part.startsWith('0')) return false;
    const n = Number(part);
    if (n > 255) return false;
    out[at + i] = n;
  }
  return true;
}

function parseV6(text: string, out: Uint8Array): boolean {
  const halves = text.split('::');
  if (halves.length > 2) return false;
  const parse = (part: string): string[] | undefined => (part === '' ? [] : part.split(':'));
  const head = parse(halves[0] as string);
  const tail = halves.length === 2 ? parse(halves[1] as string) : [];
  if (!head || !tail) return false;
  const groups: number[] = [];
  const push = (list: string[], allowV4Last: boolean): boolean => {
    for (let i = 0; i < list.length; i++) {
      const g = list[i] as string;
      if (allowV4Last && i === list.length - 1 && g.includes('.')) {
        const v4 = new Uint8Array(4);
        if (!parseV4(g, v4, 0)) return false;
        groups.push(((v4[0] as number) << 8) | (v4[1] as number), ((v4[2] as number) << 8) | (v4[3] as number));
        continue;
      }
      if (!HEX.test(g)) return false;
      groups.push(Number.parseInt(g, 16));
    }
    return true;
  };
  if (!push(head, halves.length === 1)) return false;
  const headCount = groups.length;
  if (!push(tail, true)) return false;
  const tailGroups = groups.splice(headCount);
  if (halves.length === 1) {
    if (groups.length !== 8) return false;
  } else {
    if (groups.length + tailGroups.length > 7) return false;
    while (groups.length + tailGroups.length < 8) groups.push(0);
  }
  groups.push(...tailGroups);
  for (let i = 0; i < 8; i++) {
    const g = groups[i] as number;
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  }
  return true;
}

export function parseIp(text: string): ParsedIp | undefined {
  const bytes = new Uint8Array(16);
  if (parseV4(text, bytes, 0)) return { family: 4, bytes };
  if (!text.includes(':') || !parseV6(text, bytes)) return undefined;
  const mapped = bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  if (mapped) {
    const v4 = new Uint8Array(16);
    v4.set(bytes.subarray(12, 16), 0);
    return { family: 4, bytes: v4 };
  }
  return { family: 6, bytes };
}
