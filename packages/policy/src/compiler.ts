import { createRequire } from 'node:module';
import { ABI_VERSION, type PolicyMeta } from '@apx/core';
import { canonicalJson, sourceDigest } from './canonical.js';
import { PolicyError, PolicyErrorCode, type Problem } from './error.js';
import type { Policy } from './model.js';
import { validatePolicy } from './schema.js';
import { parseYaml } from './source.js';
import { emitModule, LimitError } from './wasm/emit.js';

const require = createRequire(import.meta.url);
const OWN_VERSION = (require('../package.json') as { version: string }).version;
const WABT_VERSION = (require('wabt/package.json') as { version: string }).version;

/** Names the compiler and its toolchain: the same string must give the same bytes. */
export const COMPILER_VERSION = `apx-policy/${OWN_VERSION} wabt/${WABT_VERSION}`;

export interface CompiledPolicy {
  policy: Policy;
  meta: PolicyMeta;
  /** `<name>@<version>.wasm`. */
  fileName: string;
  wasm: Uint8Array;
  /** The canonical JSON whose SHA-256 is meta.sourceSha256. */
  canonical: string;
}

type Wabt = Awaited<ReturnType<typeof import('wabt')>>;
let wabtPromise: Promise<Wabt> | undefined;

/** wabt.js is 5.5 MB: load it on first compile only (eval and inspect never need it). */
async function loadWabt(): Promise<Wabt> {
  wabtPromise ??= import('wabt').then((m) => m.default());
  return wabtPromise;
}

/** Parses and validates a policy source; throws PolicyError listing every problem. */
export function parsePolicy(text: string, file: string): Policy {
  const parsed = parseYaml(text);
  if ('problems' in parsed) throw new PolicyError(file, parsed.problems);
  const validated = validatePolicy(parsed.source, text);
  if ('problems' in validated) throw new PolicyError(file, sortProblems(validated.problems));
  return validated.policy;
}

function sortProblems(problems: Problem[]): Problem[] {
  return [...problems].sort((a, b) => a.line - b.line || a.column - b.column);
}

/** Compiles a policy source to a deterministic WebAssembly module (docs/abi.md). */
export async function compilePolicy(text: string, file: string): Promise<CompiledPolicy> {
  // Start loading the toolchain first: its WebAssembly compiles while the source is checked.
  const toolchain = loadWabt();
  toolchain.catch(() => undefined);
  const policy = parsePolicy(text, file);
  const meta: PolicyMeta = {
    policy: policy.name,
    version: policy.version,
    abi: ABI_VERSION,
    compiler: COMPILER_VERSION,
    sourceSha256: sourceDigest(policy),
  };
  let wat: string;
  try {
    wat = emitModule(policy, meta).wat;
  } catch (err) {
    if (err instanceof LimitError) {
      throw new PolicyError(file, [
        { code: PolicyErrorCode.LIMIT_EXCEEDED, path: 'spec', message: err.message, line: 1, column: 1 },
      ]);
    }
    throw err;
  }
  const wabt = await toolchain;
  let wasm: Uint8Array;
  try {
    const mod = wabt.parseWat(`${policy.name}.wat`, wat, { annotations: true });
    try {
      mod.resolveNames();
      mod.validate();
      wasm = mod.toBinary({ log: false, write_debug_names: false, canonicalize_lebs: true, relocatable: false }).buffer;
    } finally {
      mod.destroy();
    }
  } catch (err) {
    throw new PolicyError(file, [
      {
        code: PolicyErrorCode.INTERNAL,
        path: '',
        message: `compiler bug: generated WebAssembly rejected: ${(err as Error).message.split('\n')[0]}`,
        line: 1,
        column: 1,
      },
    ]);
  }
  return {
    policy,
    meta,
    fileName: `${policy.name}@${policy.version}.wasm`,
    wasm: Uint8Array.from(wasm),
    canonical: canonicalJson(policy),
  };
}
