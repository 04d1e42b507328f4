import { CoreErrorCode, VerificationError } from '@apx/core';
import semver from 'semver';
import { WorkerError, WorkerErrorCode } from './error.js';

interface Entry {
  /** The entry as written, for the runbook's message `[1.0.0 1.1.0]`. */
  text: string;
  /** Only for this policy (`pb-pay-v1@1.1.0`), or any policy. */
  policyId: string | undefined;
  /** An exact version, or a semver range. */
  exact: string | undefined;
  range: semver.Range | undefined;
}

/**
 * ALLOWED_POLICY_VERSIONS: comma-separated entries, each an exact version (`1.0.0`, the
 * runbook's form), a version for one policy (`pb-pay-v1@1.1.0`), or a semver range, for
 * all (`>=1.0.0 <2.0.0`, `^1.2.0`) or one policy (`pb-pay-v1@~1.4.0`). It admits versions;
 * it never overrides the rollback floor (that is APX_ALLOW_ROLLBACK's job).
 *
 * An entry never means more than it says: a partial version (`1.0`, `1`) is refused rather
 * than read as the range semver would make of it. In production every entry is an exact
 * version or a range of full versions bounded on both sides: wildcards (`*`, `x`, `1.x`)
 * and open ranges (`>=0.0.0`, `>=1.0.0`) are refused.
 */
export class AllowList {
  private readonly entries: Entry[];

  private constructor(entries: Entry[]) {
    this.entries = entries;
  }

  /**
   * Parses the list; every bad entry is one problem (a WorkerError), thrown alone or, when
   * there are several, as an AggregateError of them. `source` names the setting in messages.
   */
  static parse(text: string, source = 'ALLOWED_POLICY_VERSIONS', options: { production?: boolean } = {}): AllowList {
    const entries: Entry[] = [];
    const problems: WorkerError[] = [];
    for (const raw of text.split(',')) {
      const item = raw.trim();
      if (item === '') continue;
      const at = item.indexOf('@');
      const policyId = at > 0 ? item.slice(0, at) : undefined;
      const spec = at > 0 ? item.slice(at + 1) : item;
      if (semver.valid(spec) === spec) {
        entries.push({ text: item, policyId, exact: spec, range: undefined });
        continue;
      }
      const problem = entryProblem(item, spec, source, options.production === true);
      if (problem) {
        problems.push(problem);
        continue;
      }
      entries.push({ text: item, policyId, exact: undefined, range: new semver.Range(spec) });
    }
    if (entries.length === 0 && problems.length === 0) {
      problems.push(
        new WorkerError(WorkerErrorCode.CONFIG_INVALID, `${source} is empty`, {
          hint: 'list the versions workers may load, e.g. ALLOWED_POLICY_VERSIONS="1.0.0,1.1.0"',
        }),
      );
    }
    if (problems.length === 1) throw problems[0];
    if (problems.length > 1) {
      throw new AggregateError(
        problems,
        `${problems.length} problems in ${source}: ${problems.map((p) => p.message).join('; ')}`,
      );
    }
    return new AllowList(entries);
  }

  private applicable(policyId: string): Entry[] {
    return this.entries.filter((e) => e.policyId === undefined || e.policyId === policyId);
  }

  admits(policyId: string, version: string): boolean {
    return this.applicable(policyId).some((e) => (e.exact !== undefined ? e.exact === version : e.range?.test(version) === true));
  }

  /** The runbook's words: `policy version 1.2.0 not in allowed list: [1.0.0 1.1.0]`. */
  rejection(policyId: string, version: string): VerificationError {
    return new VerificationError(
      CoreErrorCode.VERSION_NOT_ALLOWED,
      `policy version ${version} not in allowed list: [${this.entries.map((e) => e.text).join(' ')}]`,
      { hint: `add it to ALLOWED_POLICY_VERSIONS (e.g. ${policyId}@${version}) if it is meant to run` },
    );
  }

  toString(): string {
    return this.entries.map((e) => e.text).join(',');
  }
}

const FORMS =
  'exact versions (1.0.0), per-policy versions (pb-pay-v1@1.1.0) or ranges of full versions (^1.2.0, ~1.4.0, >=1.0.0 <2.0.0)';

/** What a partial version such as `1.0` would silently mean, written out: `~1.0.0`. */
function spelledOut(partial: string): string {
  const [major, minor] = partial.split('.');
  if (minor !== undefined) return `~${major}.${minor}.0`;
  return major === '0' ? '>=0.0.0 <1.0.0' : `^${major}.0.0`;
}

/** Why an entry that is not an exact version is refused, or undefined when it is a range APX accepts. */
function entryProblem(item: string, spec: string, source: string, production: boolean): WorkerError | undefined {
  if (/^v?\d+(\.\d+)?$/.test(spec)) {
    const bare = spec.replace(/^v/, '');
    return new WorkerError(
      WorkerErrorCode.CONFIG_INVALID,
      `invalid entry "${item}" in ${source}: ${bare} is not a full version (semver would read it as ${spelledOut(bare)})`,
      {
        hint: `write the exact version (${bare}${'.0'.repeat(3 - bare.split('.').length)}) or the range you mean (${spelledOut(bare)})`,
      },
    );
  }
  const range = semver.validRange(spec) ? new semver.Range(spec) : undefined;
  if (!range) {
    return new WorkerError(WorkerErrorCode.CONFIG_INVALID, `invalid entry "${item}" in ${source}`, {
      hint: `entries are ${FORMS}, comma-separated`,
    });
  }
  if (!production) return undefined;
  const unsafe = (why: string) =>
    new WorkerError(WorkerErrorCode.CONFIG_UNSAFE, `refusing entry "${item}" in ${source} in production: ${why}`, {
      hint: `production admits only what is listed: ${FORMS}`,
    });
  // Every version written in the range must be complete: `1.x`, `*` and `~1.4` leave it to
  // semver to decide what they mean.
  const operands = spec
    .replace(/(<=|>=|~>|[<>=^~])\s+/g, '$1')
    .split(/\s+|\|\|/)
    .filter((t) => t !== '' && t !== '-' && t !== '||')
    .map((t) => t.replace(/^(<=|>=|~>|[<>=^~])/, '').replace(/^v/, ''));
  const partial = operands.find((o) => semver.valid(o) !== o);
  if (partial !== undefined) {
    return unsafe(
      /^[*xX]$/.test(partial) || operands.length === 0
        ? 'a wildcard admits every version'
        : /[*xX]/.test(partial)
          ? `"${partial}" is a wildcard (it admits versions nobody listed)`
          : `"${partial}" is not a full version`,
    );
  }
  // Each alternative must be bounded on both sides: `>=0.0.0` admits every version,
  // `>=1.0.0` every later one.
  for (const set of range.set) {
    const upper = set.some((c) => c.operator === '<' || c.operator === '<=' || (c.operator === '' && c.value !== ''));
    const lower = set.some((c) => c.operator === '>' || c.operator === '>=' || (c.operator === '' && c.value !== ''));
    if (!upper) {
      return unsafe(
        !lower || range.test('0.0.0') ? 'it admits every version' : 'it has no upper bound, so it admits every later version',
      );
    }
    if (!lower) return unsafe('it has no lower bound, so it admits every earlier version');
  }
  return undefined;
}
