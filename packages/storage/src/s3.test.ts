// S3 through the official AWS SDK v3 against s3rver (a local S3 implementation) on a
// loopback port, behind the test proxy that adds conditional writes and truncation.
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setEnv } from '@apx/core/testing/hygiene';
import { openStore } from './open.js';
import { runStoreContract } from './testing/contract.js';
import { closedPort, startProxy } from './testing/proxy.js';

interface S3rverInstance {
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
}
type S3rverCtor = new (options: Record<string, unknown>) => S3rverInstance;

const env = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' };

runStoreContract('S3 (@aws-sdk/client-s3 against s3rver)', async () => {
  // The SDK's default credential chain reads the environment; s3rver's fixed test key.
  const restoreEnv = setEnv(env);
  const S3rver = createRequire(import.meta.url)('s3rver') as S3rverCtor;
  const directory = await mkdtemp(join(tmpdir(), 'apx-s3rver-'));
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory,
    configureBuckets: [{ name: 'apx-artifacts' }],
  });
  const { port } = await server.run();
  const proxy = await startProxy(`http://127.0.0.1:${port}`, { conditionalWrites: true });
  const store = await openStore(`s3://apx-artifacts/policies/prod?endpoint=${encodeURIComponent(proxy.url)}`, { env });
  return {
    store,
    truncateNext: (name) => proxy.truncateNext(name),
    openUnreachable: async () =>
      openStore(`s3://apx-artifacts/p?endpoint=http://127.0.0.1:${await closedPort()}`, { env, timeoutMs: 2000 }),
    cleanup: async () => {
      await store.close?.();
      await proxy.close();
      await server.close();
      await rm(directory, { recursive: true, force: true });
      restoreEnv();
    },
  };
});
