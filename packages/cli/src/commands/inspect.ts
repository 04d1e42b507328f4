import { MAX_ARTIFACT_BYTES, readPolicyMeta, sha256Hex } from '@apx/core';
import { trustFromKey, verifyLocalArtifact } from '../artifact-verification.js';
import { type CommandSpec, flagString } from '../command.js';
import { info } from '../context.js';
import { environmentFlag } from '../environment.js';
import { CliError, CliErrorCode } from '../error.js';
import { readInput } from '../io.js';

export const inspectCommand: CommandSpec = {
  name: 'inspect',
  summary: "Print a policy artifact's embedded metadata (policy, version, ABI, compiler, source digest).",
  usage: '[--key PUB [--env ENV]] ARTIFACT',
  details: `Without --key the metadata is read from unverified bytes and marked "verified": false:
it says what the artifact claims to be, not that it is genuine. With --key, the artifact is
first verified by the same verifier as a worker in ENV uses (see apx verify).`,
  flags: [
    { name: 'key', type: 'string', value: 'PUB', description: 'Verify the artifact with this public key first.' },
    {
      name: 'env',
      type: 'string',
      value: 'ENV',
      description: 'With --key: verify as a worker in this environment would (default: dev).',
    },
  ],
  positionals: { min: 1, max: 1, names: 'ARTIFACT (a .wasm policy artifact)' },
  async run(ctx, args) {
    const artifactPath = args.positionals[0] as string;
    const keyRef = flagString(args, 'key');
    const environment = environmentFlag(args);
    if (keyRef) {
      const trust = await trustFromKey(ctx, keyRef);
      const verified = await verifyLocalArtifact(ctx, { artifactPath, environment, trust });
      const { meta, tables } = verified;
      const summary = { routes: tables.routes.length, rules: tables.rules.length, apiKeys: tables.apiKeys.length };
      const fields = { ...meta, digest: verified.digest, size: verified.size, verified: true, keyId: verified.keyId };
      ctx.stdout.write(`${JSON.stringify({ ...fields, ...summary }, null, 2)}\n`);
      return 0;
    }
    const bytes = await readInput(ctx, artifactPath, 'artifact', 'pass a .wasm file written by apx compile');
    const digest = `sha256:${sha256Hex(bytes)}`;
    if (bytes.length > MAX_ARTIFACT_BYTES) {
      throw new CliError(
        CliErrorCode.INPUT_UNREADABLE,
        `artifact too large: ${bytes.length} bytes (max: ${MAX_ARTIFACT_BYTES})`,
        {
          hint: 'policy artifacts are capped at 10 MiB',
        },
      );
    }
    let module: WebAssembly.Module;
    try {
      // Compiling does not run anything; the metadata is a custom section.
      module = new WebAssembly.Module(bytes);
    } catch (err) {
      throw new CliError(
        CliErrorCode.INPUT_UNREADABLE,
        `${artifactPath} is not a WebAssembly module: ${(err as Error).message}`,
        {
          hint: 'pass a .wasm file written by apx compile',
        },
      );
    }
    const meta = readPolicyMeta(module);
    ctx.stdout.write(`${JSON.stringify({ ...meta, digest, size: bytes.length, verified: false }, null, 2)}\n`);
    info(ctx, 'WARNING: metadata read from an unverified artifact; pass --key to verify its signature');
    return 0;
  },
};
