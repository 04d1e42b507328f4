import { checkAbi, MAX_ARTIFACT_BYTES, readPolicyMeta, SignatureVerifier, sha256Hex, verifyArtifact } from '@apx/core';
import { type CommandSpec, flagString } from '../command.js';
import { info } from '../context.js';
import { CliError, CliErrorCode } from '../error.js';
import { readInput } from '../io.js';
import { loadPublicKey } from '../keyref.js';

export const inspectCommand: CommandSpec = {
  name: 'inspect',
  summary: "Print a policy artifact's embedded metadata (policy, version, ABI, compiler, source digest).",
  usage: '[--key PUB] ARTIFACT',
  details: `Without --key the metadata is read from unverified bytes and marked "verified": false:
it says what the artifact claims to be, not that it is genuine. With --key, ARTIFACT.sig is
verified first, as a worker would.`,
  flags: [{ name: 'key', type: 'string', value: 'PUB', description: 'Verify ARTIFACT.sig with this public key first.' }],
  positionals: { min: 1, max: 1, names: 'ARTIFACT (a .wasm policy artifact)' },
  async run(ctx, args) {
    const artifactPath = args.positionals[0] as string;
    const keyRef = flagString(args, 'key');
    const bytes = await readInput(ctx, artifactPath, 'artifact', 'pass a .wasm file written by apx compile');
    const digest = `sha256:${sha256Hex(bytes)}`;
    if (keyRef) {
      const verifier = new SignatureVerifier(await loadPublicKey(ctx, keyRef));
      const sig = await readInput(
        ctx,
        `${artifactPath}.sig`,
        'signature file',
        'inspect without --key to read unverified metadata',
      );
      const verified = verifyArtifact(bytes, sig, verifier);
      const { meta, tables } = checkAbi(verified.module);
      const summary = { routes: tables.routes.length, rules: tables.rules.length, apiKeys: tables.apiKeys.length };
      ctx.stdout.write(
        `${JSON.stringify({ ...meta, digest, size: bytes.length, verified: true, keyId: verified.keyId, ...summary }, null, 2)}\n`,
      );
      return 0;
    }
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
