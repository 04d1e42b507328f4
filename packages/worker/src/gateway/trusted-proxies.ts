import { BlockList, isIP } from 'node:net';

/**
 * APX_TRUSTED_PROXIES: the addresses (CIDR blocks or single addresses) whose forwarded
 * headers are believed. A request from anywhere else is judged by its connection's address.
 */
export class TrustedProxies {
  readonly #list = new BlockList();
  readonly entries: readonly string[];

  private constructor(entries: string[]) {
    this.entries = entries;
    for (const e of entries) {
      const [addr, bits] = e.split('/') as [string, string | undefined];
      const family = isIP(addr) === 6 ? 'ipv6' : 'ipv4';
      if (bits === undefined) this.#list.addAddress(addr, family);
      else this.#list.addSubnet(addr, Number(bits), family);
    }
  }

  /** Why `item` is not an address or CIDR block, or undefined when it is one. */
  static problem(item: string): string | undefined {
    const [addr, bits, extra] = item.split('/');
    const family = isIP(addr ?? '');
    if (family === 0 || extra !== undefined) return 'is not an IP address or CIDR block (10.0.0.0/8, 192.0.2.7, fd00::/8)';
    if (bits === undefined) return undefined;
    const max = family === 4 ? 32 : 128;
    if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) return `has a prefix length outside 0..${max}`;
    return undefined;
  }

  /** From already checked entries (see problem()). */
  static of(entries: string[]): TrustedProxies {
    return new TrustedProxies(entries);
  }

  /** Answers by address: BlockList.check builds objects on each call, and peers repeat. */
  readonly #seen = new Map<string, boolean>();

  /** True when `address` (as the socket reports it; IPv4-mapped IPv6 included) is a trusted proxy. */
  has(address: string | undefined): boolean {
    if (!address || this.entries.length === 0) return false;
    let known = this.#seen.get(address);
    if (known === undefined) {
      known = this.#check(address);
      if (this.#seen.size >= 4096) this.#seen.clear();
      this.#seen.set(address, known);
    }
    return known;
  }

  #check(address: string): boolean {
    const v4 = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : undefined;
    if (v4 !== undefined) return this.#list.check(v4, 'ipv4') || this.#list.check(address, 'ipv6');
    const family = isIP(address);
    if (family === 0) return false;
    return this.#list.check(address, family === 6 ? 'ipv6' : 'ipv4');
  }

  /**
   * The client's address: the connection's, unless it is a trusted proxy; then the rightmost
   * X-Forwarded-For entry that is not a trusted proxy (each proxy appends the address it saw,
   * so entries left of an untrusted one may be forged), else X-Real-IP.
   */
  clientAddress(peer: string | undefined, forwardedFor: string | undefined, realIp: string | undefined): string | undefined {
    const from = unmapped(peer);
    if (!this.has(peer)) return from;
    if (forwardedFor) {
      const hops = forwardedFor.split(',');
      for (let i = hops.length - 1; i >= 0; i--) {
        const hop = unmapped(stripPort((hops[i] as string).trim()));
        if (hop === undefined || isIP(hop) === 0) return from; // garbage: believe nothing further left
        if (!this.has(hop)) return hop;
      }
      return from;
    }
    const real = realIp?.trim();
    if (real && isIP(real) !== 0) return unmapped(real);
    return from;
  }

  toString(): string {
    return this.entries.join(',');
  }
}

/** `::ffff:192.0.2.7` as `192.0.2.7`. */
function unmapped(address: string | undefined): string | undefined {
  if (address?.startsWith('::ffff:') && isIP(address.slice(7)) === 4) return address.slice(7);
  return address;
}

/** `192.0.2.7:1234` or `[2001:db8::1]:1234` (some proxies write ports) without the port. */
function stripPort(hop: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(hop);
  if (bracketed) return bracketed[1] as string;
  const v4 = /^(\d{1,3}(?:\.\d{1,3}){3}):\d+$/.exec(hop);
  return v4 ? (v4[1] as string) : hop;
}

/** No proxy trusted: every request is judged by its connection's address. */
export const NO_TRUSTED_PROXIES = TrustedProxies.of([]);
