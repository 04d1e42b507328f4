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
