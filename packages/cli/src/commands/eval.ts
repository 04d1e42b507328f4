import { type JwtInput, PolicyHost, type PolicyRequest } from '@apx/core';
import { trustFromKey, verifyLocalArtifact } from '../artifact-verification.js';
import { type CommandSpec, flagString, UsageError } from '../command.js';
import { info } from '../context.js';
import { environmentFlag } from '../environment.js';
import { CliError, CliErrorCode } from '../error.js';
import { readInput } from '../io.js';
import { DEFAULT_PUBLIC_KEY } from '../keyref.js';

function bad(path: string, what: string): CliError {
  return new CliError(CliErrorCode.INPUT_UNREADABLE, `request file ${path}: ${what}`, {
    hint: 'a request is {"method","host","path","ip"?,"headers"?,"bodySize"?,"jwt"?}; see docs/abi.md',
  });
}

/** Reads REQUEST.json into the host's PolicyRequest, lowercasing header names as a worker does. */
export function parseRequest(text: string, path: string): PolicyRequest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw bad(path, 'not JSON');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad(path, 'expected a JSON object');
  const r = raw as Record<string, unknown>;
  for (const k of Object.keys(r)) {
    if (!['method', 'host', 'path', 'ip', 'headers', 'bodySize', 'jwt'].includes(k)) throw bad(path, `unknown field '${k}'`);
  }
  for (const k of ['method', 'host', 'path'] as const) if (typeof r[k] !== 'string') throw bad(path, `'${k}' must be a string`);
  const req: PolicyRequest = { method: r.method as string, host: r.host as string, path: r.path as string };
  if (r.ip !== undefined) {
    if (typeof r.ip !== 'string') throw bad(path, "'ip' must be a string");
    req.ip = r.ip;
  }
  if (r.bodySize !== undefined) {
    if (typeof r.bodySize !== 'number' || !(r.bodySize >= 0)) throw bad(path, "'bodySize' must be a non-negative number");
    req.bodySize = r.bodySize;
  }
  if (r.headers !== undefined) {
    if (typeof r.headers !== 'object' || r.headers === null || Array.isArray(r.headers))
      throw bad(path, "'headers' must be an object");
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(r.headers)) {
      if (typeof value !== 'string') throw bad(path, `header '${name}' must be a string`);
      const key = name.toLowerCase();
      headers[key] = headers[key] === undefined ? value : `${headers[key]}, ${value}`;
    }
    req.headers = headers;
  }
  if (r.jwt !== undefined) {
    const j = r.jwt as Record<string, unknown>;
    if (typeof j !== 'object' || j === null || typeof j.verified !== 'boolean')
      throw bad(path, "'jwt' must be {verified, claims}");
    if (j.verified && (typeof j.claims !== 'object' || j.claims === null)) throw bad(path, "'jwt.claims' must be an object");
    req.jwt = (j.verified ? { verified: true, claims: j.claims } : { verified: false }) as JwtInput;
  }
  return req;
}

export const evalCommand: CommandSpec = {
  name: 'eval',
  summary: 'Verify a policy artifact, then decide one request with it and print the decision as JSON.',
  usage: '--request REQUEST.json [--key PUB] [--env ENV] ARTIFACT',
  details: `ARTIFACT (named <policy-id>@<version>.wasm) is verified by the same verifier as a worker
in ENV uses (ARTIFACT.sig with the public key, ARTIFACT.sigstore.json's binding, size, magic
bytes, ABI, embedded name) before it runs: unverified bytes never run, even locally. REQUEST.json
holds the request attributes after the host-side work (JWT claims already verified): see
docs/abi.md. The decision goes to stdout.`,
  flags: [
    { name: 'request', type: 'string', value: 'FILE', description: 'The request attributes as JSON (required; - for stdin).' },
    { name: 'key', type: 'string', value: 'PUB', description: `The public key (default: ${DEFAULT_PUBLIC_KEY}).` },
    {
      name: 'env',
      type: 'string',
      value: 'ENV',
      description: 'Verify as a worker in dev, staging or production would (default: dev).',
    },
  ],
  positionals: { min: 1, max: 1, names: 'ARTIFACT (a .wasm policy artifact)' },
  async run(ctx, args) {
    const artifactPath = args.positionals[0] as string;
    const requestPath = flagString(args, 'request');
    if (!requestPath) throw new UsageError('--request is required');
    const environment = environmentFlag(args);
    const trust = await trustFromKey(ctx, flagString(args, 'key') ?? DEFAULT_PUBLIC_KEY);
    const verified = await verifyLocalArtifact(ctx, { artifactPath, environment, trust });
    const host = PolicyHost.load(verified, { onFault: (f) => info(ctx, `WARNING: policy fault (${f.kind}): ${f.message}`) });
    const request = parseRequest(
      (await readInput(ctx, requestPath, 'request file', 'pass a JSON request')).toString('utf8'),
      requestPath,
    );
    ctx.stdout.write(`${JSON.stringify(host.decide(request), null, 2)}\n`);
    return 0;
  },
};
