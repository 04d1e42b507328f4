// Starts Debian's docker-registry (CNCF distribution 2.8) on a free loopback port with a
// temporary filesystem storage directory, for tests.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toolMissing } from '@apx/core/testing/tools';
import { closedPort } from './proxy.js';

export const REGISTRY_BIN = process.env.APX_TEST_REGISTRY_BIN ?? '/usr/bin/docker-registry';

// In CI (.ci/run installs both) a missing tool fails the run instead of skipping its tests.
export function registryMissing(): string | false {
  return toolMissing('docker-registry', { command: REGISTRY_BIN });
}

export function skopeoMissing(): string | false {
  return toolMissing('skopeo');
}

export interface TestRegistry {
  /** `127.0.0.1:<port>` */
  host: string;
  /** The registry's storage directory (blobs under docker/registry/v2/blobs). */
  storageDir: string;
  stop(): Promise<void>;
}

export async function startRegistry(): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'apx-registry-'));
  const storageDir = join(dir, 'storage');
  const port = await closedPort();
  const host = `127.0.0.1:${port}`;
  await writeFile(
    join(dir, 'config.yml'),
    [
      'version: 0.1',
      'log:',
      '  level: error',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${storageDir}`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: ${host}`,
      '  secret: apx-test-only',
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn(REGISTRY_BIN, ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
    await rm(dir, { recursive: true, force: true });
  };
  // Ready when /v2/ answers; give up after a bounded number of attempts.
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) break;
    try {
      const res = await fetch(`http://${host}/v2/`, { signal: AbortSignal.timeout(1000) });
      await res.body?.cancel();
      if (res.status === 200) return { host, storageDir, stop };
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await stop();
  throw new Error(`docker-registry did not start on ${host}: ${stderr.slice(0, 2000)}`);
}
