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
 * all (`>=1.0.0 <2.0.0`, `^1.2.0`) or one policy (`pb-pay-v1@~1.4`). It admits versions;
 * it never overrides the rollback floor (that is APX_ALLOW_ROLLBACK's job).
 */
export class AllowList {
  private readonly entries: Entry[];

  private constructor(entries: Entry[]) {
    this.entries = entries;
  }

  static parse(text: string, source = 'ALLOWED_POLICY_VERSIONS'): AllowList {
    const entries: Entry[] = [];
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
      const range = semver.validRange(spec) ? new semver.Range(spec) : undefined;
      if (!range) {
        throw new WorkerError(WorkerErrorCode.CONFIG_INVALID, `invalid entry "${item}" in ${source}`, {
          hint: 'entries are versions (1.0.0), per-policy versions (pb-pay-v1@1.1.0) or semver ranges (^1.2.0), comma-separated',
        });
      }
      entries.push({ text: item, policyId, exact: undefined, range });
    }
    if (entries.length === 0) {
      throw new WorkerError(WorkerErrorCode.CONFIG_INVALID, `${source} is empty`, {
        hint: 'list the versions workers may load, e.g. ALLOWED_POLICY_VERSIONS="1.0.0,1.1.0"',
      });
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
