// Without usable Google credentials, the generated Cloud KMS client fails inside its own
// methods, from a promise nobody handles (or a callback that throws): that ended the whole
// process. GcpKmsKey connects first and awaits it, so the failure is the call's error and
// nothing escapes. (A key file that does not exist stands for "no credentials": the client
// fails at the same point, and the test needs no change to process.env.)
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { recordEscapes } from '@apx/core/testing/hygiene';
import { KmsError } from './error.js';
import { GcpKmsKey } from './gcp.js';

describe('Cloud KMS without Google credentials', () => {
  const escaped = recordEscapes(before, after);

  const options = { keyFilename: '/nonexistent/apx-test/key.json' };
  for (const name of [
    'projects/p/locations/global/keyRings/r/cryptoKeys/k',
    'projects/p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1',
  ]) {
    it(`fails with a message, and nothing escapes: ${name.split('/').slice(-2).join('/')}`, async () => {
      const ref = `gcpkms://${name}`;
      for (let attempt = 0; attempt < 2; attempt++) {
        await assert.rejects(GcpKmsKey.open(ref, name, options), (err: unknown) => {
          assert.ok(err instanceof KmsError, String(err));
          assert.match(
            err.message,
            /^gcpkms:\/\/projects\/p\/.*: cannot get Google credentials: .*nonexistent\/apx-test\/key\.json/,
          );
          assert.match(err.hint ?? '', /GOOGLE_APPLICATION_CREDENTIALS/);
          return true;
        });
      }
      // Give anything the client left behind a few turns of the event loop to surface.
      for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
      assert.deepEqual(escaped.map(String), []);
    });
  }
});
