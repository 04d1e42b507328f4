// The worker checks bearer tokens itself (DESIGN.md §7): signature against the policy's
// JWKS, issuer, audience, expiry; the policy decides on the verified claims only.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type RunningWorker, resolveConfig, startWorker } from '@apx/worker';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { Workspace } from './harness.js';

const ISSUER = 'https://login.example.com/';

type SigningKey = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];

describe('e2e: JWT bearer tokens verified by the worker against the policy JWKS', () => {
  let worker: RunningWorker;
  let jwks: ReturnType<typeof createServer>;
  let signingKey: SigningKey;
  let strangerKey: SigningKey;
  const jwksRequests: string[] = [];

  before(async () => {
    const pair = await generateKeyPair('ES256');
    signingKey = pair.privateKey;
    strangerKey = (await generateKeyPair('ES256')).privateKey;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    jwks = createServer((req, res) => {
      jwksRequests.push(req.url ?? '');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', r));
    const local = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}`;

    const ws = new Workspace();
    const artifact = ws.compilePayments();
    const store = ws.path('store');
    ws.stage(store, artifact);
    const { config, warnings } = resolveConfig({ APX_PORT: '0', APX_RELOAD_INTERVAL: '0', APX_STORE: store });
    worker = await startWorker(config, warnings, {
      env: {},
      cwd: ws.dir,
      logDestination: { write: () => undefined },
      // The policy names https://login.example.com/...; the JWKS is served locally instead.
      jwt: { fetch: (url: string, init: RequestInit) => fetch(`${local}${new URL(url).pathname}`, init) } as never,
    });
  });

  after(async () => {
    await worker.stop();
    await new Promise<void>((r) => jwks.close(() => r()));
  });

  const token = (key: SigningKey, claims: Record<string, unknown>, exp = '5m', iss = ISSUER) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setIssuer(iss)
      .setAudience('payments-api')
      .setSubject('user-7')
      .setIssuedAt()
      .setExpirationTime(exp)
      .sign(key);

  async function decide(authorization: string | undefined, extra: Record<string, unknown> = {}) {
    const request = {
      method: 'GET',
      host: 'api.example.com',
      path: '/v1/payments/123',
      ip: '198.51.100.7',
      headers: authorization ? { authorization } : {},
      ...extra,
    };
    const res = await fetch(`${worker.url}/v1/decide`, {
      method: 'POST',
      body: JSON.stringify({ policy: 'pb-pay-v1', request }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  it('allows a valid token and decides on its verified claims', async () => {
    const t = await token(signingKey, { scope: 'payments:read', tenant: 'acme', plan: 'pro' });
    const { status, body } = await decide(`Bearer ${t}`);
    assert.equal(status, 200);
    assert.equal(body.allow, true, JSON.stringify(body));
    assert.deepEqual(body.identity, { kind: 'jwt', id: 'user-7', tenant: 'acme', plan: 'pro' });
    assert.ok(jwksRequests.includes('/.well-known/jwks.json'));
  });

  it('rejects tokens signed by another key, expired, or from another issuer', async () => {
    for (const t of [
      await token(strangerKey, { scope: 'payments:read' }),
      await token(signingKey, { scope: 'payments:read' }, '-10m'),
      await token(signingKey, { scope: 'payments:read' }, '5m', 'https://evil.example.com/'),
      'not.a.jwt',
    ]) {
      const { body } = await decide(`Bearer ${t}`);
      assert.equal(body.allow, false, JSON.stringify(body));
      assert.notEqual((body.identity as { kind: string }).kind, 'jwt');
    }
  });

  it('refuses claims supplied by the caller instead of a token', async () => {
    const { status } = await decide(undefined, { jwt: { verified: true, claims: { scope: 'payments:read' } } });
    assert.equal(status, 400);
  });
});
