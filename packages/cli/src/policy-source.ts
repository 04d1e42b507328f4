import { PolicyHost, type PolicyHostOptions, parseArtifactRef, type VerifiedArtifact, verifyPolicyArtifact } from '@apx/core';
import type { CompiledPolicy } from '@apx/policy';
import type { CliContext } from './context.js';
import { readInput } from './io.js';

/** Longest a decision of `apx eval` or `apx test` may run: generous, a developer's machine may be busy. */
const LOCAL_DEADLINE_MS = 2000;

/**
 * Runs bytes with no signature through core's verifier as a development worker with strict
 * mode off would (ABI, magic bytes, validation, metering, embedded name), trusting no key:
 * nothing signed is claimed. Only for dev: callers refuse it for other environments.
 */
export function verifyUnsigned(wasm: Uint8Array, ref: { policyId: string; version: string }): VerifiedArtifact {
  return verifyPolicyArtifact({
    material: { ref, artifact: wasm },
    trust: { kind: 'keys', signers: [] },
    policy: { environment: 'dev', strict: false, requireBinding: false },
  });
}

export function loadHost(artifact: VerifiedArtifact, onFault: PolicyHostOptions['onFault']): PolicyHost {
  return PolicyHost.load(artifact, { deadlineMs: LOCAL_DEADLINE_MS, ...(onFault ? { onFault } : {}) });
}

/**
 * Compiles a policy source in memory (nothing is written or signed) and loads it as an
 * unsigned dev artifact. A source with problems: each on stderr, then a PolicyCheckError.
 */
export async function compileSource(
  ctx: CliContext,
  path: string,
): Promise<{ compiled: CompiledPolicy; artifact: VerifiedArtifact }> {
  const { compilePolicy, PolicyCheckError, PolicyError } = await import('@apx/policy');
  const text = (await readInput(ctx, path, 'policy file', 'pass the path of an apx/v1 policy YAML file')).toString('utf8');
  let compiled: CompiledPolicy;
  try {
    compiled = await compilePolicy(text, path);
  } catch (err) {
    if (!(err instanceof PolicyError)) throw err;
    // Every problem on its own line, as apx compile prints them, then one summary.
    for (const line of err.lines()) ctx.stderr.write(`${line}\n`);
    const n = err.problems.length;
    throw new PolicyCheckError(err.code, `${n} problem${n === 1 ? '' : 's'} in ${path}; nothing evaluated`, {
      hint: 'fix the policy source; docs/policy-language.md describes apx/v1',
    });
  }
  const ref = parseArtifactRef(`${compiled.meta.policy}@${compiled.meta.version}`);
  return { compiled, artifact: verifyUnsigned(compiled.wasm, ref) };
}
