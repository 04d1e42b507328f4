import { basename } from 'node:path';
import {
  CoreErrorCode,
  type PolicyDecision,
  type PolicyHost,
  type PolicyRequest,
  VerificationError,
  type VerifiedArtifact,
} from '@apx/core';
import { refFromFileName, trustFromKey, verifyLocalArtifact } from '../artifact-verification.js';
import { type CommandSpec, flagBool, flagString, UsageError } from '../command.js';
import { type CliContext, info } from '../context.js';
import { environmentFlag } from '../environment.js';
import { CliError, CliErrorCode } from '../error.js';
import { readInput, readOptional } from '../io.js';
import { DEFAULT_PUBLIC_KEY } from '../keyref.js';
import { compileSource, loadHost, verifyUnsigned } from '../policy-source.js';

const REQUEST_HINT =
  'a request is {"method","host","path","ip"?,"headers"?,"bodySize"?,"jwt"?}; see "Requests" in docs/policy-language.md';

/** Reads REQUEST.json into the host's PolicyRequest, lowercasing header names as a worker does. */
export async function parseRequest(text: string, path: string): Promise<PolicyRequest> {
  const bad = (what: string) =>
    new CliError(CliErrorCode.INPUT_UNREADABLE, `request file ${path}: ${what}`, { hint: REQUEST_HINT });
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw bad('not JSON');
  }
  const { requestFromValue } = await import('@apx/policy');
  const parsed = requestFromValue(raw);
  if ('problem' in parsed) throw bad(parsed.problem.field === '' ? 'expected a JSON object' : parsed.problem.message);
  return parsed.request;
}

const isSource = (path: string) => /\.ya?ml$/i.test(path);

/**
 * What `--fail` and `--fail-defined` mean, after `opa eval`: read the decision as the query
 * "is this request allowed?". An allow is a defined result; a deny (including the fail-closed
 * denials of a policy fault) is an undefined one.
 */
export function evalExitCode(decision: PolicyDecision, mode: 'none' | 'fail' | 'fail-defined'): number {
  if (mode === 'fail') return decision.effect === 'allow' ? 0 : 1;
  if (mode === 'fail-defined') return decision.effect === 'allow' ? 1 : 0;
  return 0;
}

async function artifactToRun(ctx: CliContext, path: string, args: Parameters<CommandSpec['run']>[1]): Promise<VerifiedArtifact> {
  const environment = environmentFlag(args);
  if (isSource(path)) {
    if (environment !== 'dev')
      throw new UsageError(`--env ${environment} checks a signed artifact, not a source; compile and sign ${path} first`);
    if (flagString(args, 'key') !== undefined)
      throw new UsageError(`--key verifies an artifact's signature; ${path} is a source`);
    const { artifact } = await compileSource(ctx, path);
    info(ctx, `note: evaluating source ${path}, not a signed artifact (compiled in memory, nothing written)`);
    return artifact;
  }
  refFromFileName(path);
  const hint = 'a signature and bundle sit beside the artifact as written by apx compile or apx sign';
  const signature = await readOptional(ctx, `${path}.sig`, 'signature file', hint);
  const bundle = await readOptional(ctx, `${path}.sigstore.json`, 'bundle file', hint);
  if (signature === undefined && bundle === undefined && environment === 'dev') {
    const wasm = await readInput(ctx, path, 'artifact', 'pass a .wasm file written by apx compile');
    const artifact = verifyUnsigned(wasm, refFromFileName(path));
    info(
      ctx,
      `WARNING: evaluating an UNSIGNED artifact ${path} (dev only): no signature was checked; workers in strict mode, the default, refuse it`,
    );
    return artifact;
  }
  if (signature === undefined && bundle === undefined) {
    // Outside dev an unsigned artifact is refused before any key is read, as a worker would.
    throw new VerificationError(
      CoreErrorCode.SIGNATURE_MISSING,
      `signature file not found: ${basename(path)}.sig (strict mode enabled)`,
      {
        hint: `an unsigned artifact runs only with --env dev; sign it (apx sign) for ${environment}`,
      },
    );
  }
  const trust = await trustFromKey(ctx, flagString(args, 'key') ?? DEFAULT_PUBLIC_KEY);
  return verifyLocalArtifact(ctx, { artifactPath: path, environment, trust });
}

export const evalCommand: CommandSpec = {
  name: 'eval',
  summary: 'Decide one request with a policy (signed artifact, unsigned artifact in dev, or source) and print the decision.',
  usage: '--request REQUEST.json [--fail | --fail-defined] [--key PUB] [--env ENV] ARTIFACT|SOURCE',
  details: `ARTIFACT (named <policy-id>@<version>.wasm) is verified by the same verifier as a worker
in ENV uses (ARTIFACT.sig with the public key, ARTIFACT.sigstore.json's binding, size, magic
bytes, ABI, embedded name) before it runs. In dev (the default) an artifact with neither
ARTIFACT.sig nor ARTIFACT.sigstore.json beside it (apx compile --no-sign) runs unsigned, with a
warning on stderr; --env staging or production refuses it. A SOURCE (.yaml) is compiled in
memory and run without signing (stderr says so): the author's loop, like apx test.

REQUEST.json holds the request attributes after the host-side work (JWT claims already
verified): see "Requests" in docs/policy-language.md. The decision goes to stdout as JSON.

Exit codes, as opa eval's, reading the decision as "is the request allowed?": 0 for any
decision; with --fail, 1 when the decision is deny; with --fail-defined, 1 when it is allow.
Errors (unreadable input, verification refused) exit 1, usage mistakes 2.`,
  flags: [
    { name: 'request', type: 'string', value: 'FILE', description: 'The request attributes as JSON (required; - for stdin).' },
    { name: 'fail', type: 'boolean', description: 'Exit 1 when the decision is deny (a CI gate that a request is allowed).' },
    {
      name: 'fail-defined',
      type: 'boolean',
      description: 'Exit 1 when the decision is allow (a CI gate that a request is refused).',
    },
    { name: 'key', type: 'string', value: 'PUB', description: `The public key (default: ${DEFAULT_PUBLIC_KEY}).` },
    {
      name: 'env',
      type: 'string',
      value: 'ENV',
      description: 'Verify as a worker in dev, staging or production would (default: dev).',
    },
  ],
  positionals: { min: 1, max: 1, names: 'ARTIFACT (a .wasm policy artifact) or SOURCE (a .yaml policy)' },
  async run(ctx, args) {
    const path = args.positionals[0] as string;
    const requestPath = flagString(args, 'request');
    if (!requestPath) throw new UsageError('--request is required');
    if (flagBool(args, 'fail') && flagBool(args, 'fail-defined'))
      throw new UsageError('--fail and --fail-defined are opposites; give one of them');
    const mode = flagBool(args, 'fail') ? 'fail' : flagBool(args, 'fail-defined') ? 'fail-defined' : 'none';
    const request = await parseRequest(
      (await readInput(ctx, requestPath, 'request file', 'pass a JSON request')).toString('utf8'),
      requestPath,
    );
    const artifact = await artifactToRun(ctx, path, args);
    const host: PolicyHost = loadHost(artifact, (f) => info(ctx, `WARNING: policy fault (${f.kind}): ${f.message}`));
    const decision = host.decide(request);
    ctx.stdout.write(`${JSON.stringify(decision, null, 2)}\n`);
    return evalExitCode(decision, mode);
  },
};
