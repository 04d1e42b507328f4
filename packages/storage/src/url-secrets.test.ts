// Store URLs are shown in logs, messages and the worker's API: a URL carrying a credential is
// refused when opened, by a message that does not repeat the secret and names where the
// credential goes instead; whatever is shown goes through redactStoreUrl.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StorageError, StorageErrorCode } from './error.js';
import { openStore } from './open.js';
import { redactStoreUrl } from './redact.js';

const SECRET = 'Sup3rS3cretVal';

async function refusal(url: string, env: Record<string, string> = {}): Promise<StorageError> {
  const err = await openStore(url, { env }).then(
    () => assert.fail(`${url} was accepted`),
    (e: unknown) => e,
  );
  assert.ok(err instanceof StorageError, String(err));
  assert.equal(err.code, StorageErrorCode.INVALID_URL);
  const shown = `${err.message} ${err.hint ?? ''}`;
  assert.doesNotMatch(shown, new RegExp(SECRET), `the refusal repeats the secret: ${shown}`);
  assert.doesNotMatch(shown, /\n/);
  return err;
}

describe('store URLs that carry credentials', () => {
  it('refuses userinfo, naming the environment variables each backend reads instead', async () => {
    const cases: Array<[string, RegExp]> = [
      [`s3://AKIAEXAMPLE:${SECRET}@bucket/p`, /AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY/],
      [`gs://user:${SECRET}@bucket/p`, /GOOGLE_APPLICATION_CREDENTIALS/],
      [`oci://ci:${SECRET}@registry.example.com/apx`, /APX_OCI_USERNAME and APX_OCI_PASSWORD/],
      [`oci+http://ci:${SECRET}@127.0.0.1:5000/apx`, /APX_OCI_USERNAME and APX_OCI_PASSWORD/],
      [`file://user:${SECRET}@localhost/tmp/x`, /takes no credentials/],
      // A password with a slash makes the URL unparsable: still refused, still not shown.
      [`s3://AKIA:${SECRET}/x@bucket/p`, /./],
    ];
    for (const [url, hint] of cases) {
      const err = await refusal(url);
      assert.match(err.hint ?? err.message, hint, url);
    }
  });

  it('refuses credentials in the endpoint parameter and in APX_S3_ENDPOINT / APX_GCS_ENDPOINT', async () => {
    const s3 = await refusal(`s3://bucket/p?endpoint=${encodeURIComponent(`http://AKIA:${SECRET}@127.0.0.1:9000`)}`);
    assert.match(
      s3.message,
      /^invalid store URL s3:\/\/bucket\/p\?endpoint=http:\/\/REDACTED@127\.0\.0\.1:9000: credentials in the endpoint parameter are refused/,
    );
    assert.match(s3.hint ?? '', /AWS_ACCESS_KEY_ID/);
    // Not percent-encoded, as people type it.
    await refusal(`s3://bucket/p?endpoint=http://AKIA:${SECRET}@127.0.0.1:9000`);
    await refusal(`gs://bucket/p?endpoint=http://127.0.0.1:4443/?access_token=${SECRET}`);
    await refusal(`gs://bucket/p?endpoint=https://storage.example.com/%23${SECRET}`.replace('%23', '#'));
    const env = await refusal('s3://bucket/p', { APX_S3_ENDPOINT: `https://k:${SECRET}@minio.example.com` });
    assert.match(env.message, /credentials in APX_S3_ENDPOINT are refused/);
    await refusal('gs://bucket/p', { APX_GCS_ENDPOINT: `http://127.0.0.1:4443?key=${SECRET}` });
  });

  it('refuses any parameter a scheme does not take; credential-like names get the credentials message', async () => {
    for (const url of [
      `s3://bucket/p?endpoint=http://127.0.0.1:9000&secret_access_key=${SECRET}`,
      `s3://bucket/p?X-Amz-Credential=AKIA&X-Amz-Signature=${SECRET}`,
      `gs://bucket/p?access_token=${SECRET}`,
      `s3://bucket/p?${SECRET}`,
      `gs://bucket/p?project=p&${SECRET}=1`.replace(SECRET, `${SECRET}%2F`),
    ]) {
      const err = await refusal(url);
      assert.match(err.message, /credentials in store URL parameters are refused|other than name=value/, url);
    }
    const unknown = await refusal('s3://bucket/p?regoin=eu-west-1');
    assert.match(unknown.message, /unknown parameter regoin \(s3:\/\/ takes endpoint and region\)/);
    await refusal(`oci://registry.example.com/apx?token=${SECRET}`);
    await refusal(`file:///tmp/store?token=${SECRET}`);
    await refusal(`s3://bucket/p#${SECRET}`);
  });

  it('refuses registry credentials for a plain-http registry that is not on this machine', async () => {
    for (const env of [{ APX_OCI_USERNAME: 'ci', APX_OCI_PASSWORD: SECRET }, { APX_OCI_TOKEN: SECRET }]) {
      const err = await refusal('oci+http://registry.example.com:5000/apx', env);
      assert.match(err.message, /sent only over https/);
      assert.match(err.hint ?? '', /oci:\/\/registry\.example\.com:5000\/apx/);
      // https, or plain http on loopback: accepted (nothing is contacted at open).
      await openStore('oci://registry.example.com:5000/apx', { env });
      await openStore('oci+http://127.0.0.1:5000/apx', { env });
      await openStore('oci+http://localhost:5000/apx', { env });
    }
  });

  it('opens the URLs people use, and shows them unchanged', async () => {
    for (const url of [
      's3://bucket/p?endpoint=http://127.0.0.1:9000&region=eu-west-1',
      `s3://bucket/p?endpoint=${encodeURIComponent('http://127.0.0.1:9000')}`,
      'gs://bucket/p?endpoint=http://127.0.0.1:4443&project=demo',
      'gs://bucket/p?endpoint=storage.example.com',
      'oci://registry.example.com/apx/policies',
      'file:///tmp/apx-store',
    ]) {
      const store = await openStore(url);
      assert.equal(store.url, url);
      assert.equal(redactStoreUrl(url), url);
      await store.close?.();
    }
  });
});

describe('redactStoreUrl', () => {
  it('hides userinfo, parameter values (but region and project), endpoint secrets and fragments', () => {
    const cases: Array<[string, string]> = [
      [`s3://AKIA:${SECRET}@bucket/p`, 's3://REDACTED@bucket/p'],
      [`oci://ci:${SECRET}@reg.example.com/apx`, 'oci://REDACTED@reg.example.com/apx'],
      [
        `s3://bucket/p?endpoint=http://AKIA:${SECRET}@minio:9000&region=eu`,
        's3://bucket/p?endpoint=http://REDACTED@minio:9000&region=eu',
      ],
      [
        `s3://bucket/p?endpoint=${encodeURIComponent(`http://AKIA:${SECRET}@minio:9000`)}`,
        's3://bucket/p?endpoint=http://REDACTED@minio:9000',
      ],
      [`gs://bucket/p?endpoint=http://h:1/?sig=${SECRET}`, 'gs://bucket/p?endpoint=http://h:1/?sig=REDACTED'],
      [`gs://bucket/p?token=${SECRET}&project=demo`, 'gs://bucket/p?token=REDACTED&project=demo'],
      [`s3://bucket/p?${SECRET}`, 's3://bucket/p?REDACTED'],
      [`s3://bucket/p#${SECRET}`, 's3://bucket/p#REDACTED'],
      // Unparsable: everything before the last @ is hidden.
      [`s3://AKIA:${SECRET}/x@bucket/p`, 's3://REDACTED@bucket/p'],
      [`https://u:${SECRET}@host\\path`, 'https://REDACTED@host\\path'],
      ['./artifacts', './artifacts'],
      ['/srv/apx store', '/srv/apx store'],
    ];
    for (const [url, shown] of cases) {
      assert.equal(redactStoreUrl(url), shown, url);
      assert.doesNotMatch(redactStoreUrl(url), new RegExp(SECRET));
    }
  });
});
