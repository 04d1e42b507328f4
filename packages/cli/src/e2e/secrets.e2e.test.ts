// Secrets never appear in a log, an error, an API answer or a metric. A store URL that
// carries a credential (userinfo, a credential parameter, an endpoint with either) is refused
// when the worker or a command opens it, in one line that does not repeat the secret and
// names the environment variables to use instead. Credentials given the right way (the
// environment) stay out of everything a running worker prints or answers, and registry
// credentials never reach a token service on another host over plain http.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { closedPort } from '@apx/storage/testing/proxy';
import { apx, Workspace } from './harness.js';
import { WorkerChild } from './worker-child.js';

const SECRET = 'Sup3rS3cretValue';

function assertNoSecret(text: string, where: string): void {
  assert.ok(!text.includes(SECRET), `the secret appears in ${where}:\n${text}`);
}

describe('e2e: store URLs that carry a credential are refused, without repeating it', () => {
  let ws: Workspace;
  let artifact: string;
  before(() => {
    ws = new Workspace();
    artifact = ws.compilePayments();
  });
  after(() => rmSync(ws.dir, { recursive: true, force: true }));

  const refused: Array<{ name: string; env: Record<string, string>; says: RegExp }> = [
    {
      name: 'userinfo in the endpoint of an s3:// store',
      env: { APX_STORE: `s3://apx-artifacts/p?endpoint=http://AKIAEXAMPLE:${SECRET}@127.0.0.1:9000` },
      says: /credentials in the endpoint parameter are refused.*AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY/,
    },
    {
      name: 'a secret key parameter beside the endpoint',
      env: { APX_STORE: `s3://apx-artifacts/p?endpoint=http://127.0.0.1:9000&secret_access_key=${SECRET}` },
      says: /credentials in store URL parameters are refused.*AWS_ACCESS_KEY_ID/,
    },
    {
      name: 'a token in the endpoint of a gs:// store',
      env: { APX_STORE: `gs://apx-artifacts/p?endpoint=${encodeURIComponent(`http://127.0.0.1:4443/?access_token=${SECRET}`)}` },
      says: /the endpoint parameter takes no query.*GOOGLE_APPLICATION_CREDENTIALS/,
    },
    {
      name: 'userinfo in an oci:// store',
      env: { APX_STORE: `oci://ci:${SECRET}@registry.example.com/apx` },
      says: /credentials in the store URL are refused.*APX_OCI_USERNAME and APX_OCI_PASSWORD/,
    },
    {
      name: 'userinfo in APX_S3_ENDPOINT',
      env: { APX_STORE: 's3://apx-artifacts/p', APX_S3_ENDPOINT: `http://AKIAEXAMPLE:${SECRET}@127.0.0.1:9000` },
      says: /credentials in APX_S3_ENDPOINT are refused/,
    },
    {
      name: 'a credential in APX_TRUST_REPOSITORY',
      env: {
        APX_TRUST_REPOSITORY: `s3://apx-trust/p?endpoint=http://127.0.0.1:9000&X-Amz-Signature=${SECRET}`,
        APX_STATE_DIR: 'state',
      },
      says: /credentials in store URL parameters are refused/,
    },
    {
      name: 'userinfo in a store URL of a scheme APX does not know',
      env: { APX_STORE: `https://user:${SECRET}@store.example.com/apx` },
      says: /invalid APX_STORE="https:\/\/REDACTED@store\.example\.com\/apx"/,
    },
  ];

  for (const c of refused) {
    it(`apx worker: ${c.name}`, async () => {
      const worker = await WorkerChild.start(ws.dir, { APX_STORE: ws.path('store'), ...c.env });
      const code = await worker.stop();
      assert.equal(code, 1, worker.output);
      assertNoSecret(worker.output, 'the worker output');
      const lines = worker.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, worker.stderr);
      assert.match(lines[0] ?? '', /^ERROR: /);
      assert.match(lines[0] ?? '', c.says);
      assert.doesNotMatch(worker.output, /unexpected/);
    });
  }

  it('apx publish, apx verify and apx trust status refuse it the same way', () => {
    const url = `s3://apx-artifacts/p?endpoint=http://AKIAEXAMPLE:${SECRET}@127.0.0.1:9000`;
    for (const args of [
      ['publish', '--store', url, artifact],
      ['verify', '--trust-repository', url, artifact],
      ['trust', 'status', '--store', url],
    ]) {
      const r = apx(ws.dir, args, { APX_STORE: undefined });
      assert.equal(r.status, 1, `${args[0]}: ${r.stderr}`);
      assertNoSecret(`${r.stdout}${r.stderr}`, `apx ${args[0]}`);
      assert.match(r.stderr, /^ERROR: invalid store URL s3:\/\/apx-artifacts\/p\?endpoint=http:\/\/REDACTED@127\.0\.0\.1:9000: /);
      assert.match(r.stderr, /AWS_ACCESS_KEY_ID/);
      assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
    }
    // The same URL through APX_STORE.
    const r = apx(ws.dir, ['publish', artifact], { APX_STORE: url });
    assert.equal(r.status, 1, r.stderr);
    assertNoSecret(`${r.stdout}${r.stderr}`, 'apx publish with APX_STORE');
  });
});

describe("e2e: credentials from the environment stay out of a running worker's output", () => {
  let ws: Workspace;
  const servers: Server[] = [];
  before(() => {
    ws = new Workspace();
  });
  after(async () => {
    for (const s of servers) {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
    rmSync(ws.dir, { recursive: true, force: true });
  });

  /** Logs, stderr, /readyz, /v1/policies and /metrics: none holds the secret. */
  async function assertNothingShows(worker: WorkerChild): Promise<void> {
    for (const path of ['/readyz', '/v1/policies', '/metrics', '/healthz']) {
      assertNoSecret((await worker.get(path)).text, path);
    }
    assertNoSecret(worker.output, 'the worker output');
  }

  const loadFailure = (l: { severity: string; policy_ref?: unknown }) =>
    l.severity === 'ERROR' && l.policy_ref === 'pb-pay-v1@1.0.0';

  it('AWS credentials, an S3 store that does not answer', async () => {
    const worker = await WorkerChild.start(ws.dir, {
      APX_STORE: `s3://apx-artifacts/policies?endpoint=http://127.0.0.1:${await closedPort()}`,
      APX_POLICIES: 'pb-pay-v1@1.0.0',
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE',
      AWS_SECRET_ACCESS_KEY: SECRET,
    });
    try {
      await worker.waitFor(loadFailure, 'load failure');
      assert.equal((await worker.get('/readyz')).status, 503);
      await assertNothingShows(worker);
    } finally {
      await worker.stop();
    }
    assertNoSecret(worker.output, 'the worker output');
  });

  it('registry credentials: a token realm on another host over plain http gets nothing', async () => {
    // "Another host": another port on loopback, so another origin; what it receives is recorded.
    const realmRequests: Array<string | undefined> = [];
    const realm = createServer((req, res) => {
      realmRequests.push(req.headers.authorization);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"token":"t"}');
    });
    const listen = async (s: Server) => {
      servers.push(s);
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
      return (s.address() as AddressInfo).port;
    };
    const realmPort = await listen(realm);
    const registry = createServer((_req, res) => {
      res
        .writeHead(401, { 'www-authenticate': `Bearer realm="http://127.0.0.1:${realmPort}/token",service="registry"` })
        .end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
    });
    const registryPort = await listen(registry);
    const worker = await WorkerChild.start(ws.dir, {
      APX_STORE: `oci+http://127.0.0.1:${registryPort}/apx`,
      APX_POLICIES: 'pb-pay-v1@1.0.0',
      APX_OCI_USERNAME: 'ci',
      APX_OCI_PASSWORD: SECRET,
    });
    try {
      const failure = await worker.waitFor(loadFailure, 'load failure');
      assert.match(
        failure.message,
        /token service http:\/\/127\.0\.0\.1:\d+ is plain http on another host; registry credentials are sent only over https/,
      );
      assert.equal((await worker.get('/readyz')).status, 503);
      await assertNothingShows(worker);
    } finally {
      await worker.stop();
    }
    assert.deepEqual(realmRequests, [], 'the token service on another origin was contacted');
  });
});
