import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type PolicyTables, REQUEST } from './abi.js';
import type { PolicyRequest } from './request.js';
import { RequestEncoder } from './request-encoder.js';

const TABLES = {
  reasons: ['r'],
  routes: [],
  rules: [],
  apiKeys: [],
  apiKeyHeader: null,
  jwt: null,
  headerSlots: ['x-a', 'x-b'],
  headers: { set: [], remove: [] },
  rateLimits: [],
  memoryPages: 1,
} as unknown as PolicyTables;

function setup() {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 1 });
  const u8 = new Uint8Array(memory.buffer);
  const u32 = new Uint32Array(memory.buffer);
  const encoder = new RequestEncoder(u8, u32, TABLES);
  const text = (at: number): string | undefined => {
    const ptr = u32[at >> 2] as number;
    const len = u32[(at >> 2) + 1] as number;
    return ptr === 0 ? undefined : Buffer.from(u8.subarray(ptr, ptr + len)).toString('utf8');
  };
  /** Encodes `req` and reads every string slot back from memory. */
  const roundTrip = (req: PolicyRequest) => {
    encoder.encode(req);
    return {
      method: text(REQUEST.method),
      host: text(REQUEST.host),
      path: text(REQUEST.path),
      ip: text(REQUEST.ip),
      a: text(REQUEST.headerSlots),
      b: text(REQUEST.headerSlots + 8),
    };
  };
  const want = (req: PolicyRequest) => ({
    method: req.method,
    host: req.host.toLowerCase(),
    path: req.path,
    ip: req.ip ?? '',
    a: req.headers?.['x-a'],
    b: req.headers?.['x-b'],
  });
  return { encoder, u8, roundTrip, want };
}

describe('RequestEncoder', () => {
  it('leaves every value of every request in memory, whichever values repeat and move', () => {
    const { roundTrip, want } = setup();
    const paths = ['/a', '/a', '/bb', '/a', '/päth', '/päth', '/a', `/${'x'.repeat(200)}`, '/a'];
    for (let i = 0; i < 400; i++) {
      const req: PolicyRequest = {
        method: i % 4 === 0 ? 'POST' : 'GET',
        // New hosts grow the intern region down toward the per-request data, and fill it
        // (it is then dropped) a few times, while paths and header values recur.
        host: i % 2 === 0 ? `H${i}.${'e'.repeat(40)}.Example.com` : 'api.example.com',
        path: paths[i % paths.length] as string,
        ip: i % 3 === 0 ? '2001:db8::1' : '192.0.2.1',
        headers: i % 4 === 1 ? { 'x-b': 'v' } : { 'x-a': i % 2 ? 'same' : 'sämé', 'x-b': 'v' },
      };
      assert.deepEqual(roundTrip(req), want(req), `request ${i}`);
    }
  });

  it('keeps every value right while the intern region grows down toward the request data', () => {
    // For each length, a header value ends up somewhere just below the intern region; then a
    // new host is interned, growing the region down over it, while the path stays the same.
    for (let len = 57_000; len < 58_400; len += 4) {
      const { roundTrip, want } = setup();
      for (let i = 0; i < 120; i++) roundTrip({ method: 'GET', host: `host-${i}-${'h'.repeat(50)}`, path: '/' });
      const req = { method: 'GET', host: 'api.example.com', path: `/${'p'.repeat(len)}`, headers: { 'x-a': 'value-that-stays' } };
      assert.deepEqual(roundTrip(req), want(req));
      const next = { ...req, host: `new-host-${'n'.repeat(50)}` };
      assert.deepEqual(roundTrip(next), want(next), `path of ${len}`);
      assert.deepEqual(roundTrip(req), want(req));
    }
  });

  it('writes everything again after forget', () => {
    const { encoder, u8, roundTrip, want } = setup();
    const req = { method: 'GET', host: 'api.example.com', path: '/a-path', ip: '192.0.2.1', headers: { 'x-a': 'k' } };
    roundTrip(req);
    // What a failed encoding leaves: the area overwritten.
    u8.fill(0x2a, REQUEST.headerSlots + 16, 4096);
    encoder.forget();
    assert.deepEqual(roundTrip(req), want(req));
  });
});
