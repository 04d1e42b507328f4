// The interoperability tools the tests drive as independent implementations, which .ci/run
// installs. A test that needs one asks here: on a developer's machine a missing tool skips
// the test with the reason printed; in CI (CI set, as .ci/run does) it fails, so a broken CI
// image cannot pass by skipping. Exported as `@apx/core/testing/tools`; tests only.
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';

export interface InteropTool {
  /** The program run to check it is there. */
  command: string;
  args: string[];
  /** The Debian package that provides it (what .ci/run's apt-get installs). */
  apt: string;
}

export const INTEROP_TOOLS = {
  openssl: { command: 'openssl', args: ['version'], apt: 'openssl' },
  'wasm-validate': { command: 'wasm-validate', args: ['--version'], apt: 'wabt' },
  'softhsm2-util': { command: 'softhsm2-util', args: ['--version'], apt: 'softhsm2' },
  'docker-registry': { command: '/usr/bin/docker-registry', args: ['--version'], apt: 'docker-registry' },
  skopeo: { command: 'skopeo', args: ['--version'], apt: 'skopeo' },
  promtool: { command: 'promtool', args: ['--version'], apt: 'prometheus' },
  // The Prometheus server itself: the fleet view scraped from real workers (issue 16).
  prometheus: { command: 'prometheus', args: ['--version'], apt: 'prometheus' },
  // kubectl's built-in kustomize renders deploy/kubernetes (Debian's kubectl 1.20 and later).
  kubectl: { command: 'kubectl', args: ['version', '--client'], apt: 'kubernetes-client' },
  // The worker's OCI image (issue 16): built with umoci, run with runc.
  umoci: { command: 'umoci', args: ['--version'], apt: 'umoci' },
  runc: { command: 'runc', args: ['--version'], apt: 'runc' },
  // Envoy ext_authz from an independent gRPC stack: Debian's protoc generates the messages
  // (well-known types from libprotobuf-dev), Debian's python3-grpcio carries the calls.
  protoc: { command: 'protoc', args: ['--version'], apt: 'protobuf-compiler' },
  'protobuf-well-known-types': {
    command: 'test',
    args: ['-f', '/usr/include/google/protobuf/struct.proto'],
    apt: 'libprotobuf-dev',
  },
  'python3-grpcio': {
    command: '/usr/bin/python3',
    args: ['-c', 'import grpc, google.protobuf.json_format'],
    apt: 'python3-grpcio python3-protobuf',
  },
  nginx: { command: 'nginx', args: ['-v'], apt: 'nginx' },
  caddy: { command: 'caddy', args: ['version'], apt: 'caddy' },
} as const satisfies Record<string, InteropTool>;
export type InteropToolName = keyof typeof INTEROP_TOOLS;

/** True when tests run in CI (`CI` set and not false/0): missing tools fail instead of skipping. */
export function inCi(env: Record<string, string | undefined> = process.env): boolean {
  const v = env.CI?.trim().toLowerCase();
  return v !== undefined && v !== '' && v !== 'false' && v !== '0';
}

const reported = new Set<string>();

/**
 * For node:test's `skip` option: false when `tool` runs. When it does not (or `problem` says
 * why it cannot be used), the reason to skip; outside CI the reason is printed, in CI a
 * failing test "required tool X missing: .ci/run installs it (apt-get install Y)" is added
 * once per file, so the run fails on that one clear line rather than on a cascade.
 * `command` overrides the program checked (e.g. APX_TEST_REGISTRY_BIN).
 */
export function toolMissing(tool: InteropToolName, options: { command?: string; problem?: string | false } = {}): string | false {
  const spec: InteropTool = INTEROP_TOOLS[tool];
  const command = options.command ?? spec.command;
  let problem = options.problem ?? false;
  if (problem === false) {
    const r = spawnSync(command, spec.args, { stdio: 'ignore' });
    if (r.error !== undefined || r.status !== 0) problem = `${command} not installed`;
  }
  if (problem === false) return false;
  const reason = `${problem} (apt-get install ${spec.apt})`;
  if (!reported.has(tool)) {
    reported.add(tool);
    if (inCi()) {
      const message = `required tool ${tool} missing: .ci/run installs it (apt-get install ${spec.apt}); ${problem}`;
      test(`required tool ${tool} is installed`, () => {
        throw new Error(message);
      });
    } else {
      process.stdout.write(`# SKIP ${reason}\n`);
    }
  }
  return reason;
}
