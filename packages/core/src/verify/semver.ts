/**
 * Semantic Versioning 2.0.0 precedence (§11), for the rollback floor. Core takes no
 * third-party dependency for this: the rule is short, and the inputs were checked with
 * isSemver before they get here. Returns <0, 0 or >0; build metadata is ignored.
 */
export function compareSemver(a: string, b: string): number {
  const [coreA, preA] = split(a);
  const [coreB, preB] = split(b);
  for (let i = 0; i < 3; i++) {
    const d = compareNumeric(coreA[i] ?? '0', coreB[i] ?? '0');
    if (d !== 0) return d;
  }
  // A version without pre-release fields ranks above one with them (§11.3).
  if (preA.length === 0 || preB.length === 0) return preB.length - preA.length;
  for (let i = 0; i < Math.max(preA.length, preB.length); i++) {
    const x = preA[i];
    const y = preB[i];
    if (x === undefined) return -1; // fewer fields rank lower (§11.4.4)
    if (y === undefined) return 1;
    const xNum = /^\d+$/.test(x);
    const yNum = /^\d+$/.test(y);
    if (xNum && yNum) {
      const d = compareNumeric(x, y);
      if (d !== 0) return d;
    } else if (xNum !== yNum) {
      return xNum ? -1 : 1; // numeric identifiers rank below alphanumeric ones (§11.4.3)
    } else if (x !== y) {
      return x < y ? -1 : 1; // ASCII order (§11.4.2)
    }
  }
  return 0;
}

function split(version: string): [string[], string[]] {
  const noBuild = version.split('+')[0] as string;
  const dash = noBuild.indexOf('-');
  const core = dash < 0 ? noBuild : noBuild.slice(0, dash);
  const pre = dash < 0 ? [] : noBuild.slice(dash + 1).split('.');
  return [core.split('.'), pre];
}

/** Numeric identifiers of any length, without leading zeros (isSemver guarantees it). */
function compareNumeric(a: string, b: string): number {
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}
