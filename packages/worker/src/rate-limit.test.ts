import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RateLimiter } from './rate-limit.js';

describe('RateLimiter', () => {
  it('admits a burst, refuses the next request, and refills at the declared rate', () => {
    let now = 0;
    const limiter = new RateLimiter({ now: () => now });
    const charge = [{ name: 'per-tenant', key: 'acme', rps: 2, burst: 3 }];
    for (let i = 0; i < 3; i++) assert.equal(limiter.take('pb', charge), undefined);
    assert.deepEqual(limiter.take('pb', charge), { limit: 'per-tenant', retryAfter: 1 });
    now += 500; // one token at 2 rps
    assert.equal(limiter.take('pb', charge), undefined);
    assert.ok(limiter.take('pb', charge));
  });

  it('keeps keys and policies apart, and charges nothing when any bucket refuses', () => {
    const limiter = new RateLimiter({ now: () => 0 });
    const a = { name: 'per-key', key: 'a', rps: 1, burst: 1 };
    const b = { name: 'per-key', key: 'b', rps: 1, burst: 1 };
    assert.equal(limiter.take('pb', [a]), undefined);
    assert.equal(limiter.take('pb', [b]), undefined);
    assert.equal(limiter.take('other', [a]), undefined);
    const ip = { name: 'per-ip', key: '10.0.0.1', rps: 1, burst: 5 };
    assert.ok(limiter.take('pb', [ip, a])); // a is empty: refused...
    for (let i = 0; i < 5; i++) assert.equal(limiter.take('pb', [ip]), undefined); // ...and ip was not charged
  });
});

describe('RateLimiter table bound', () => {
  it('forgets the least recently used bucket past maxBuckets (it comes back full), and keeps the others', () => {
    const limiter = new RateLimiter({ maxBuckets: 2, now: () => 0 });
    const one = (key: string) => [{ name: 'per-key', key, rps: 1, burst: 1 }];
    assert.equal(limiter.take('pb', one('a')), undefined);
    assert.equal(limiter.take('pb', one('b')), undefined);
    assert.ok(limiter.take('pb', one('a'))); // a is empty, and now the most recent
    assert.equal(limiter.take('pb', one('c')), undefined); // b, the least recent, is forgotten
    assert.equal(limiter.size, 2);
    assert.ok(limiter.take('pb', one('a'))); // still remembered: still empty
    assert.equal(limiter.take('pb', one('b')), undefined); // forgotten: full again
    assert.equal(limiter.size, 2);
  });

  it('charges every bucket of one request even when they outnumber the table, then trims it', () => {
    const limiter = new RateLimiter({ maxBuckets: 1, now: () => 0 });
    const charges = ['a', 'b', 'c'].map((key) => ({ name: 'per-key', key, rps: 1, burst: 2 }));
    assert.equal(limiter.take('pb', charges), undefined);
    assert.equal(limiter.size, 1);
    // c (the most recent) kept its charge: one token left, then none.
    assert.equal(limiter.take('pb', [charges[2] as (typeof charges)[number]]), undefined);
    assert.deepEqual(limiter.take('pb', [charges[2] as (typeof charges)[number]]), { limit: 'per-key', retryAfter: 1 });
  });

  it('keeps thousands of keys apart through slot reuse', () => {
    const limiter = new RateLimiter({ maxBuckets: 1000, now: () => 0 });
    for (let round = 0; round < 3; round++)
      for (let i = 0; i < 5000; i++)
        assert.equal(limiter.take('pb', [{ name: 'ip', key: `k${i}`, rps: 1, burst: 5 }]), undefined);
    assert.equal(limiter.size, 1000);
    // Every key was forgotten before it came round again; the last 1000 kept 4 of their 5 tokens.
    for (let i = 4000; i < 5000; i++) {
      const c = [{ name: 'ip', key: `k${i}`, rps: 1, burst: 5 }];
      for (let k = 0; k < 4; k++) assert.equal(limiter.take('pb', c), undefined);
      assert.ok(limiter.take('pb', c));
    }
    assert.equal(limiter.size, 1000);
  });
});
