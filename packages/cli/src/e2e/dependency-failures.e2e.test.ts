// No crash from a dependency: a worker whose key source or store needs credentials it does
// not have (Secret Manager, Cloud KMS, AWS KMS, Vault, S3) keeps running and says so: each
// load fails with a message naming what is missing, /readyz is 503 with that reason, /healthz
// keeps answering while the loads are retried, and nothing says "unexpected". Google's
// clients used to end the process about a second after start (an unhandled rejection inside
// the client when Application Default Credentials find nothing).
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { closedPort } from '@apx/storage/testing/proxy';
import { Workspace } from './harness.js';
import { WorkerChild } from './worker-child.js';

interface Case {
  name: string;
  env: () => Promise<Record<string, string>>;
  /** What the load failure says. */
  message: RegExp;
}

/**
 * No Google credentials: no GOOGLE_APPLICATION_CREDENTIALS, an empty HOME (no gcloud
 * credentials file), and the metadata server at a closed loopback port (as on a machine
 * outside Google Cloud, without waiting for 169.254.169.254 to time out).
 */
async function noGoogleCredentials(): Promise<Record<string, string>> {
  const metadata = `127.0.0.1:${await closedPort()}`;
  return { GCE_METADATA_HOST: metadata, GCE_METADATA_IP: metadata };
}

const NO_GOOGLE = /no Google credentials found; set GOOGLE_APPLICATION_CREDENTIALS or run (the worker )?with a service account/;

const CASES: Case[] = [
  {
    name: 'APX_PUBLIC_KEY in Secret Manager, no Google credentials',
    env: async () => ({ ...(await noGoogleCredentials()), APX_PUBLIC_KEY: 'projects/p/secrets/s/versions/1' }),
    message: new RegExp(`failed to access secret: ${NO_GOOGLE.source}`),
  },
  {
    name: 'APX_PUBLIC_KEY in Cloud KMS (a key: its versions are listed), no Google credentials',
    env: async () => ({
      ...(await noGoogleCredentials()),
      APX_PUBLIC_KEY: 'gcpkms://projects/p/locations/global/keyRings/r/cryptoKeys/k',
    }),
    message: new RegExp(
      `public key not available: gcpkms://projects/p/locations/global/keyRings/r/cryptoKeys/k \\(${NO_GOOGLE.source}`,
    ),
  },
  {
    name: 'APX_PUBLIC_KEY in Cloud KMS (a version), no Google credentials',
    env: async () => ({
      ...(await noGoogleCredentials()),
      APX_PUBLIC_KEY: 'gcpkms://projects/p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1',
    }),
    message: NO_GOOGLE,
  },
  {
    name: 'APX_PUBLIC_KEY in AWS KMS, no AWS credentials',
    env: async () => ({ AWS_REGION: 'us-east-1', AWS_EC2_METADATA_DISABLED: 'true', APX_PUBLIC_KEY: 'awskms:///alias/apx' }),
    message:
      /public key not available: awskms:\/\/\/alias\/apx \(no AWS credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY/,
  },
  {
    name: 'APX_PUBLIC_KEY in Vault, no VAULT_TOKEN',
    env: async () => ({ APX_PUBLIC_KEY: 'hashivault://apx' }),
    message: /public key not available: hashivault:\/\/apx \(VAULT_ADDR and VAULT_TOKEN must be set/,
  },
  {
    name: 'an S3 store, no AWS credentials',
    env: async () => ({
      AWS_REGION: 'us-east-1',
      AWS_EC2_METADATA_DISABLED: 'true',
      APX_STORE: `s3://apx-artifacts/p?endpoint=http://127.0.0.1:${await closedPort()}`,
    }),
    message: /no AWS credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY/,
  },
];

/** Polls /healthz (200 each time) until two load attempts have been rejected. */
async function untilRetried(worker: WorkerChild): Promise<void> {
  for (let i = 0; i < 300; i++) {
    assert.equal(worker.exitCode, undefined, `the worker exited:\n${worker.output}`);
    assert.equal((await worker.get('/healthz')).status, 200);
    const { text } = await worker.get('/metrics');
    const rejected = text
      .split('\n')
      .filter((l) => l.startsWith('apx_policy_load_failures_total{'))
      .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
    if (rejected >= 2) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`no second load attempt; output:\n${worker.output}`);
}

describe('e2e: a client library without credentials never stops the worker', () => {
  let ws: Workspace;
  let store: string;

  before(() => {
    ws = new Workspace();
    store = ws.path('store');
    ws.stage(store, ws.compilePayments());
  });
  after(() => rmSync(ws.dir, { recursive: true, force: true }));

  for (const c of CASES) {
    it(c.name, async () => {
      const worker = await WorkerChild.start(ws.dir, {
        APX_STORE: store,
        APX_POLICIES: 'pb-pay-v1@1.0.0',
        ...(await c.env()),
      });
      try {
        assert.equal(worker.exitCode, undefined, `the worker exited at start:\n${worker.output}`);
        const failure = (l: { severity: string; message: string; policy_ref?: unknown }) =>
          l.severity === 'ERROR' && l.policy_ref === 'pb-pay-v1@1.0.0';
        const first = await worker.waitFor(failure, 'load failure');
        assert.match(first.message, c.message);
        assert.match(first.message, /^artifact verification failed for pb-pay-v1@1\.0\.0: /);
        // The load is retried (the crash came during the first attempts): poll /healthz until
        // a second attempt has failed too (apx_policy_load_failures_total counts every attempt).
        await untilRetried(worker);
        const ready = await worker.get('/readyz');
        assert.equal(ready.status, 503);
        assert.match(JSON.stringify(ready.body), c.message);
        assert.equal(worker.exitCode, undefined, `the worker exited:\n${worker.output}`);
      } finally {
        assert.equal(await worker.stop(), 0, worker.output);
      }
      assert.doesNotMatch(worker.output, /unexpected|report it/i);
      assert.deepEqual(
        worker.logs.filter((l) => l.severity === 'RAW'),
        [],
        'every line on stdout is a JSON log line',
      );
      assert.doesNotMatch(worker.stderr, /Error:|at .*\.js:\d+/, `a stack trace on stderr:\n${worker.stderr}`);
    });
  }

  it('a stray rejection from a library is logged as an error and the worker keeps serving', async () => {
    // A preload stands for a library with such a bug: once the worker has its handler, it
    // lets one promise reject with nobody waiting on it.
    const preload = `const t = setInterval(() => {
      if (process.listenerCount('unhandledRejection') === 0) return;
      clearInterval(t);
      Promise.reject(new Error('simulated dependency failure'));
    }, 20);
    t.unref();`;
    const worker = await WorkerChild.start(ws.dir, {
      APX_STORE: store,
      APX_PUBLIC_KEY: 'keys/cosign.pub',
      NODE_OPTIONS: `--import=data:text/javascript,${encodeURIComponent(preload)}`,
    });
    try {
      const line = await worker.waitFor((l) => l.unhandled_rejection === true, 'unhandled rejection line');
      assert.equal(line.severity, 'ERROR');
      assert.match(
        line.message,
        /^unhandled promise rejection \(the worker keeps running\): simulated dependency failure; this is a bug/,
      );
      assert.equal((await worker.get('/healthz')).status, 200);
      // And it goes on serving: the policy loads, the worker becomes ready.
      let ready = 0;
      for (let i = 0; i < 300 && ready !== 200; i++) {
        ready = (await worker.get('/readyz')).status;
        if (ready !== 200) await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(ready, 200, worker.output);
    } finally {
      assert.equal(await worker.stop(), 0, worker.output);
    }
    assert.equal(worker.logs.filter((l) => l.unhandled_rejection === true).length, 1, worker.output);
    assert.equal(worker.stderr, '');
  });

  it('only a bug says "this is unexpected": an exception thrown outside any request ends the process in one line', async () => {
    // What remains of the "unexpected" path: a plain exception from a timer, which no code of
    // the worker or of a library handles. State may be half-changed, so the process ends (exit
    // 1) rather than serve on; the line asks for a report, with no stack trace.
    const preload = `const t = setInterval(() => {
      if (process.listenerCount('unhandledRejection') === 0) return;
      clearInterval(t);
      throw new TypeError('simulated bug');
    }, 20);
    t.unref();`;
    const worker = await WorkerChild.start(ws.dir, {
      APX_STORE: store,
      APX_PUBLIC_KEY: 'keys/cosign.pub',
      NODE_OPTIONS: `--import=data:text/javascript,${encodeURIComponent(preload)}`,
    });
    assert.equal(await worker.exited, 1, worker.output);
    assert.equal(worker.stderr, 'ERROR: simulated bug; this is unexpected: rerun with APX_DEBUG=1 and report it\n');
    await worker.stop();
  });
});
