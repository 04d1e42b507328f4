import { createHash } from 'node:crypto';
import type { Policy } from './model.js';

/**
 * The canonical source of a policy: JSON of the validated model with sorted keys, CIDRs as
 * written, conditions as their CEL text and no YAML formatting or comments. Reformatting the
 * YAML, reordering mapping keys or editing comments keeps the digest; any change of meaning
 * (including order of routes, rules, keys, lists) changes it. docs/policy-language.md.
 */
export function canonicalJson(policy: Policy): string {
  const plain = {
    ...policy,
    ip: { allow: policy.ip.allow.map((c) => c.text), deny: policy.ip.deny.map((c) => c.text) },
    rules: policy.rules.map(({ condition: _, ...rest }) => rest),
  };
  return stringify(plain);
}

function stringify(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(stringify).join(',')}]`;
  const entries = Object.entries(v as Record<string, unknown>)
    .filter(([, x]) => x !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${stringify(x)}`).join(',')}}`;
}

export function sourceDigest(policy: Policy): string {
  return createHash('sha256').update(canonicalJson(policy), 'utf8').digest('hex');
}
