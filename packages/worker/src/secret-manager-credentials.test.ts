// Without usable Google credentials, the generated Secret Manager client fails inside
// accessSecretVersion from a promise nobody handles: the worker process ended about a second
// after start. The provider connects first and awaits it, so the failure is the read's error
// (the runbook's "failed to access secret: ..."), a later read tries again with a new client,
// and nothing escapes. (A key file that does not exist stands for "no credentials": the client
// fails at the same point, and the test needs no change to process.env.)
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { recordEscapes } from '@apx/core/testing/hygiene';
import { WorkerError, WorkerErrorCode } from './error.js';
import { SecretManagerKeyProvider } from './secret-manager.js';

describe('Secret Manager without Google credentials', () => {
  const escaped = recordEscapes(before, after);

  it('fails each read with a message naming the credentials, and nothing escapes', async () => {
    const provider = new SecretManagerKeyProvider('projects/p/secrets/s/versions/1', {
      clientOptions: { keyFilename: '/nonexistent/apx-test/key.json' },
      timeoutMs: 5000,
    });
    try {
      for (let attempt = 0; attempt < 2; attempt++) {
        await assert.rejects(provider.verifier(), (err: unknown) => {
          assert.ok(err instanceof WorkerError, String(err));
          assert.equal(err.code, WorkerErrorCode.PUBLIC_KEY_UNAVAILABLE);
          assert.match(
            err.message,
            /^failed to access secret: cannot get Google credentials: .*nonexistent\/apx-test\/key\.json/,
          );
          assert.match(err.hint ?? '', /GOOGLE_APPLICATION_CREDENTIALS/);
          return true;
        });
      }
    } finally {
      await provider.close();
    }
    // Give anything the client left behind a few turns of the event loop to surface.
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    assert.deepEqual(escaped.map(String), []);
  });
});
