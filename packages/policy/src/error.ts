import { ApxError } from '@apx/core';

/** The closed set of problem codes of the policy compiler. Codes are API; messages are for people. */
export const PolicyErrorCode = {
  SOURCE_TOO_LARGE: 'SOURCE_TOO_LARGE',
  YAML_SYNTAX: 'YAML_SYNTAX',
  YAML_DUPLICATE_KEY: 'YAML_DUPLICATE_KEY',
  YAML_ALIAS: 'YAML_ALIAS',
  YAML_MULTIPLE_DOCUMENTS: 'YAML_MULTIPLE_DOCUMENTS',
  SCHEMA_UNKNOWN_FIELD: 'SCHEMA_UNKNOWN_FIELD',
  SCHEMA_MISSING_FIELD: 'SCHEMA_MISSING_FIELD',
  SCHEMA_TYPE: 'SCHEMA_TYPE',
  SCHEMA_VALUE: 'SCHEMA_VALUE',
  DUPLICATE_NAME: 'DUPLICATE_NAME',
  UNKNOWN_REFERENCE: 'UNKNOWN_REFERENCE',
  LIMIT_EXCEEDED: 'LIMIT_EXCEEDED',
  CEL_SYNTAX: 'CEL_SYNTAX',
  CEL_UNKNOWN_IDENTIFIER: 'CEL_UNKNOWN_IDENTIFIER',
  CEL_TYPE: 'CEL_TYPE',
  CEL_UNSUPPORTED: 'CEL_UNSUPPORTED',
  /** `apx compile --check`: the rebuild differs from the artifact. */
  ARTIFACT_MISMATCH: 'ARTIFACT_MISMATCH',
  /** The WebAssembly toolchain rejected generated code: a compiler bug, never the author's. */
  INTERNAL: 'INTERNAL',
} as const;
export type PolicyErrorCode = (typeof PolicyErrorCode)[keyof typeof PolicyErrorCode];

/** One problem in a policy source: data, rendered by `formatProblem`. */
export interface Problem {
  code: PolicyErrorCode;
  /** Where in the document, e.g. `spec.rules[1].when`; empty for the whole document. */
  path: string;
  message: string;
  /** 1-based. */
  line: number;
  /** 1-based. */
  column: number;
}

export function formatProblem(file: string, p: Problem): string {
  return `${file}:${p.line}:${p.column}${p.path ? ` ${p.path}` : ''}: ${p.message}`;
}

/** Every problem of one source at once; the CLI prints one line per problem. */
export class PolicyError extends ApxError<PolicyErrorCode> {
  override readonly name = 'PolicyError';
  readonly problems: readonly Problem[];
  readonly file: string;

  constructor(file: string, problems: readonly Problem[]) {
    const first = problems[0];
    super(
      first?.code ?? PolicyErrorCode.INTERNAL,
      problems.length === 1 && first ? formatProblem(file, first) : `${file}: ${problems.length} problems`,
      { hint: 'fix the policy source; docs/policy-language.md describes apx/v1' },
    );
    this.file = file;
    this.problems = problems;
  }

  /** One line per problem, `file:line:col path: message`. */
  lines(): string[] {
    return this.problems.map((p) => formatProblem(this.file, p));
  }
}

/** A check that does not concern a source location (e.g. `--check`). */
export class PolicyCheckError extends ApxError<PolicyErrorCode> {
  override readonly name = 'PolicyCheckError';
}
