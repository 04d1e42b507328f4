/**
 * Client-address parsing for the host (DESIGN.md §7: the host parses, the policy decides).
 * IPv4-mapped IPv6 (::ffff:a.b.c.d) is reported as IPv4 so that an IPv4 allow-list also
 * covers dual-stack sockets. Anything else is refused: an unparsable address matches no CIDR
 * and fails an allow-list (fail closed).
 *
 * What is accepted: dotted-quad IPv4 of decimal parts 0..255 without leading zeros (some
 * stacks read `010` as octal); IPv6 of hexadecimal groups of 1..4 digits, at most one `::`
 * standing for at least one zero group, a dotted quad allowed as the last two groups. Refused:
 * zone ids (`fe80::1%eth0`), brackets, ports, whitespace.
 *
 * The parser reads character codes and writes the 16 bytes straight into the caller's buffer
 * (the host passes the WebAssembly request area): no regular expression, no substring, no
 * allocation, since every new client address goes through it.
 */
export interface ParsedIp {
  family: 4 | 6;
  /** 16 bytes; for IPv4 the address is in bytes 0..3 and the rest is zero. */
  bytes: Uint8Array;
}

const COLON = 0x3a;
const DOT = 0x2e;

/** IPv6 groups of the part after `::`, kept until their position is known (8 at most). */
const tailGroups = new Uint16Array(8);
/** A dotted quad after `::`, before it becomes two of tailGroups. */
const quad = new Uint8Array(4);

/**
 * Parses text[from, to) as a dotted quad into out[at..at+4). False when it is not one.
 */
function parseV4(text: string, from: number, to: number, out: Uint8Array, at: number): boolean {
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c === DOT) {
      if (digits === 0 || part === 3) return false;
      out[at + part++] = value;
      value = 0;
      digits = 0;
      continue;
    }
    const d = c - 0x30;
    // At most 3 digits, no leading zero (a first digit 0 followed by another digit).
    if (d < 0 || d > 9 || digits === 3 || (digits === 1 && value === 0)) return false;
    value = value * 10 + d;
    if (value > 255) return false;
    digits++;
  }
  if (digits === 0 || part !== 3) return false;
  out[at + 3] = value;
  return true;
}

/** 0..15 for a hexadecimal digit, else -1. */
function hexDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  if (l >= 0x61 && l <= 0x66) return l - 0x61 + 10;
  return -1;
}

/**
 * Parses the colon-separated groups of text[from, to) (the whole address, or one side of
 * `::`): into `out` from byte `at` on as big-endian pairs (the whole address, or the part
 * before `::`), or into `tailGroups` when `out` is null (the part after `::`, placed once its
 * length is known). `v4Last`: the last group may be a dotted quad (two groups). Returns how
 * many groups were written, or -1 when malformed. An empty range is zero groups.
 */
function parseGroups(text: string, from: number, to: number, v4Last: boolean, out: Uint8Array | null, at: number): number {
  if (from === to) return 0;
  let count = 0;
  let value = 0;
  let digits = 0;
  // One pass: hex digits accumulate, a colon ends a group, a dot turns the group into a quad.
  for (let i = from; i <= to; i++) {
    const c = i < to ? text.charCodeAt(i) : COLON;
    if (c === DOT) {
      // A dotted quad only as the last group, where allowed, and it takes two groups.
      const start = i - digits;
      const colon = text.indexOf(':', i);
      if (!v4Last || count > 6 || (colon >= 0 && colon < to)) return -1;
      if (!parseV4(text, start, to, quad, 0)) return -1;
      const hi = ((quad[0] as number) << 8) | (quad[1] as number);
      const lo = ((quad[2] as number) << 8) | (quad[3] as number);
      if (out !== null) {
        out[at + 2 * count] = hi >> 8;
        out[at + 2 * count + 1] = hi & 0xff;
        out[at + 2 * count + 2] = lo >> 8;
        out[at + 2 * count + 3] = lo & 0xff;
      } else {
        tailGroups[count] = hi;
        tailGroups[count + 1] = lo;
      }
      return count + 2;
    }
    if (c !== COLON) {
      const h = hexDigit(c);
      if (h < 0 || digits === 4) return -1;
      value = (value << 4) | h;
      digits++;
      continue;
    }
    if (digits === 0 || count === 8) return -1;
    if (out !== null) {
      out[at + 2 * count] = value >> 8;
      out[at + 2 * count + 1] = value & 0xff;
    } else tailGroups[count] = value;
    count++;
    value = 0;
    digits = 0;
  }
  return count;
}

function clear(out: Uint8Array, at: number): void {
  for (let i = 0; i < 16; i++) out[at + i] = 0;
}

/**
 * Parses `text` into out[at..at+16) (IPv4 in the first 4 bytes, the rest zero) and returns
 * the family, or 0 (and 16 zero bytes) when it is not an address.
 */
export function parseIpInto(text: string, out: Uint8Array, at: number): 0 | 4 | 6 {
  const n = text.length;
  if (parseV4(text, 0, n, quad, 0)) {
    out[at] = quad[0] as number;
    out[at + 1] = quad[1] as number;
    out[at + 2] = quad[2] as number;
    out[at + 3] = quad[3] as number;
    for (let i = 4; i < 16; i++) out[at + i] = 0;
    return 4;
  }
  const gap = text.indexOf('::');
  let ok: boolean;
  if (gap < 0) {
    ok = text.indexOf(':') >= 0 && parseGroups(text, 0, n, true, out, at) === 8;
  } else if (text.indexOf('::', gap + 1) >= 0) {
    ok = false;
  } else {
    const head = parseGroups(text, 0, gap, false, out, at);
    const tail = head < 0 ? -1 : parseGroups(text, gap + 2, n, true, null, 0);
    ok = tail >= 0 && head + tail <= 7;
    if (ok) {
      // The groups `::` stands for, then the tail in its place.
      for (let i = at + 2 * head; i < at + 2 * (8 - tail); i++) out[i] = 0;
      for (let g = 0; g < tail; g++) {
        const v = tailGroups[g] as number;
        const p = at + 2 * (8 - tail + g);
        out[p] = v >> 8;
        out[p + 1] = v & 0xff;
      }
    }
  }
  if (!ok) {
    clear(out, at);
    return 0;
  }
  for (let i = 0; i < 10; i++) if (out[at + i] !== 0) return 6;
  if (out[at + 10] !== 0xff || out[at + 11] !== 0xff) return 6;
  // IPv4-mapped: the last 4 bytes are the IPv4 address.
  out[at] = out[at + 12] as number;
  out[at + 1] = out[at + 13] as number;
  out[at + 2] = out[at + 14] as number;
  out[at + 3] = out[at + 15] as number;
  for (let i = 4; i < 16; i++) out[at + i] = 0;
  return 4;
}

/** The allocating form, for callers off the hot path: the family and a fresh 16-byte copy. */
export function parseIp(text: string): ParsedIp | undefined {
  const bytes = new Uint8Array(16);
  const family = parseIpInto(text, bytes, 0);
  return family === 0 ? undefined : { family, bytes };
}
