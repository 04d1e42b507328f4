import type { CommandSpec } from '../command.js';

/**
 * One `apx` command as the top-level help lists it. `load` imports the command's module, and
 * with it the libraries the command runs with: `apx <name>` loads that one command, and
 * `apx --version` or `apx --help` none (start-up: each command pays only for what it uses).
 * The name and summary repeat the spec's; a test checks that they agree.
 */
export interface CommandEntry {
  name: string;
  summary: string;
  load(): Promise<CommandSpec>;
}

/** Every `apx` command, in the order --help lists them. */
export const COMMANDS: readonly CommandEntry[] = [
  {
    name: 'compile',
    summary: 'Compile apx/v1 policy YAML to signed WebAssembly artifacts (<name>@<version>.wasm).',
    load: async () => (await import('./compile.js')).compileCommand,
  },
  {
    name: 'test',
    summary: 'Run policy unit tests (*.test.yaml: requests and expected decisions) against policy sources.',
    load: async () => (await import('./test.js')).testCommand,
  },
  {
    name: 'fmt',
    summary: 'Rewrite apx/v1 policy sources in the canonical layout (--check: list the ones that differ).',
    load: async () => (await import('./fmt.js')).fmtCommand,
  },
  {
    name: 'schema',
    summary: 'Print the JSON Schema (draft 2020-12) of apx/v1 policies (--tests: of apx test files), for editors and linters.',
    load: async () => (await import('./schema.js')).schemaCommand,
  },
  {
    name: 'eval',
    summary: 'Decide one request with a policy (signed artifact, unsigned artifact in dev, or source) and print the decision.',
    load: async () => (await import('./eval.js')).evalCommand,
  },
  {
    name: 'inspect',
    summary: "Print a policy artifact's embedded metadata (policy, version, ABI, compiler, source digest).",
    load: async () => (await import('./inspect.js')).inspectCommand,
  },
  {
    name: 'verify',
    summary: 'Would a worker in ENV load this artifact? Runs the workers’ own verifier on it.',
    load: async () => (await import('./verify.js')).verifyCommand,
  },
  {
    name: 'generate-key-pair',
    summary: "Create an ECDSA P-256 key pair in cosign's format: PREFIX.key (encrypted, mode 0600) and PREFIX.pub.",
    load: async () => (await import('./generate-key-pair.js')).generateKeyPairCommand,
  },
  {
    name: 'import-key-pair',
    summary: 'Wrap an existing plain PEM private key as a cosign encrypted key pair.',
    load: async () => (await import('./import-key-pair.js')).importKeyPairCommand,
  },
  {
    name: 'public-key',
    summary: 'Print the PEM public key (PKIX) of a key, and its key id.',
    load: async () => (await import('./public-key.js')).publicKeyCommand,
  },
  {
    name: 'sign',
    summary: 'Sign a policy artifact for one policy, version and environment: ARTIFACT.sig and ARTIFACT.sigstore.json.',
    load: async () => (await import('./sign.js')).signCommand,
  },
  {
    name: 'sign-blob',
    summary: 'Sign a file with a cosign-compatible key, or keylessly: a detached signature and, optionally, a Sigstore bundle.',
    load: async () => (await import('./sign-blob.js')).signBlobCommand,
  },
  {
    name: 'verify-blob',
    summary: 'Verify a file (or its sha256: digest) against a signature or a Sigstore bundle, with a key or keylessly.',
    load: async () => (await import('./verify-blob.js')).verifyBlobCommand,
  },
  {
    name: 'verify-attestation',
    summary:
      'Verify a signed in-toto attestation (SBOM, provenance...) over a file or its sha256: digest, with a key or keylessly.',
    load: async () => (await import('./verify-attestation.js')).verifyAttestationCommand,
  },
  {
    name: 'publish',
    summary: 'Publish a signed artifact, its signature and its bundle to an artifact store.',
    load: async () => (await import('./publish.js')).publishCommand,
  },
  {
    name: 'revoke',
    summary: 'Revoke an approved artifact in an environment: alias of apx trust revoke.',
    load: async () => (await import('./revoke.js')).revokeCommand,
  },
  {
    name: 'index',
    summary: 'Publish freshness (renew snapshot and timestamp): alias of apx trust publish.',
    load: async () => (await import('./index-cmd.js')).indexCommand,
  },
  {
    name: 'keys',
    summary: 'Rotate the artifact signing key of an environment (alias of apx trust signer add/remove).',
    load: async () => (await import('./keys.js')).keysCommand,
  },
  {
    name: 'hash-key',
    summary: "Hash an API key for a policy's spec.auth.apiKeys (SHA-256 hex), read without echo or from stdin.",
    load: async () => (await import('./hash-key.js')).hashKeyCommand,
  },
  {
    name: 'trust',
    summary: 'The trust repository (TUF): approve and revoke artifacts per environment, rotate keys, publish freshness.',
    load: async () => (await import('./trust/index.js')).trustCommand,
  },
  {
    name: 'worker',
    summary: 'Run the verifying worker: load policies by reference, verify them, and serve decisions over HTTP.',
    load: async () => (await import('./worker.js')).workerCommand,
  },
  {
    name: 'completion',
    summary: 'Print a shell completion script (bash, zsh or fish) for apx commands and their flags.',
    load: async () => (await import('./completion.js')).completionCommand,
  },
];

/** Every command's full spec (flags, subcommands): for completion scripts and tests, which need them all. */
export function loadCommands(): Promise<CommandSpec[]> {
  return Promise.all(COMMANDS.map((c) => c.load()));
}
