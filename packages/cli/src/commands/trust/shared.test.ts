import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCommandArgs, UsageError } from '../../command.js';
import { parseInitFlags, trustInitCommand } from './init.js';
import { flagList, parseAssignments, parseCount, parseDuration, parseExpires, TOP_LEVEL_NAMES } from './shared.js';

const usage = (includes: string) => (err: unknown) => {
  assert.ok(err instanceof UsageError, String(err));
  assert.ok(err.message.includes(includes), err.message);
  return true;
};

describe('apx trust flags', () => {
  it('durations: minutes, hours, days (and seconds); anything else is a usage error', () => {
    assert.equal(parseDuration('30m', '--x'), 1800);
    assert.equal(parseDuration('24h', '--x'), 86_400);
    assert.equal(parseDuration('7d', '--x'), 604_800);
    assert.equal(parseDuration('90d', '--x'), 7_776_000);
    for (const bad of ['', '24', 'h', '0h', '1y', '1.5h', '-1d', '24 h', '1000000d']) {
      assert.throws(() => parseDuration(bad, '--expires timestamp='), usage('is not a duration like 30m, 24h, 7d or 90d'), bad);
    }
  });

  it('--expires ROLE=DURATION, repeatable, roles checked, no role twice', () => {
    const args = (...items: string[]) => ({ flags: { expires: items }, positionals: [] });
    assert.deepEqual(parseExpires(args('timestamp=24h', 'snapshot=7d', 'production=30d')), {
      timestamp: 86_400,
      snapshot: 604_800,
      production: 2_592_000,
    });
    assert.throws(() => parseExpires(args('prod=1d')), usage('the role must be one of'));
    assert.throws(() => parseExpires(args('production=1d'), TOP_LEVEL_NAMES), usage('root, targets, snapshot, timestamp'));
    assert.throws(() => parseExpires(args('timestamp=1d', 'timestamp=2d')), usage('names timestamp twice'));
    assert.throws(() => parseExpires(args('24h')), usage('is not NAME=VALUE'));
  });

  it('assignments, counts and repeatable flags', () => {
    assert.deepEqual(parseAssignments(['production=keys/a=b.pub'], 'approver'), [['production', 'keys/a=b.pub']]);
    assert.throws(() => parseAssignments(['=x'], 'approver'), usage('--approver =x is not NAME=VALUE'));
    assert.throws(() => parseAssignments(['production='], 'approver'), usage('is not NAME=VALUE'));
    assert.equal(parseCount('2', '--threshold'), 2);
    assert.throws(() => parseCount('0', '--threshold'), usage('is not a positive whole number'));
    assert.deepEqual(flagList({ flags: { key: ['a', 'b'] }, positionals: [] }, 'key'), ['a', 'b']);
    assert.deepEqual(flagList({ flags: {}, positionals: [] }, 'key'), []);
  });

  it('init: role keys, thresholds, approvers per environment', () => {
    const argv = [
      '--root-key',
      'r1.key',
      '--root-key',
      'r2.key',
      '--root-threshold',
      '2',
      '--targets-key',
      't.key',
      '--snapshot-key',
      's.key',
      '--timestamp-key',
      'ts.key',
      '--approver',
      'dev=d.pub',
      '--approver',
      'staging=s.pub',
      '--approver',
      'production=a.pub',
      '--approver',
      'production=b.pub',
      '--approver',
      'production=c.pub',
      '--threshold',
      'production=2',
      '--expires',
      'timestamp=12h',
    ];
    const plan = parseInitFlags(parseCommandArgs(trustInitCommand, argv));
    assert.deepEqual(plan.roleKeys.root, ['r1.key', 'r2.key']);
    assert.deepEqual(plan.roleThresholds, { root: 2, targets: 1 });
    assert.deepEqual(plan.approvers.production, ['a.pub', 'b.pub', 'c.pub']);
    assert.deepEqual(plan.approverThresholds, { production: 2 });
    assert.deepEqual(plan.expires, { timestamp: 43_200 });
    const without = (flag: string) => {
      const copy = [...argv];
      const at = copy.indexOf(flag);
      copy.splice(at, 2);
      return parseCommandArgs(trustInitCommand, copy);
    };
    assert.throws(() => parseInitFlags(without('--snapshot-key')), usage('--snapshot-key is required'));
    assert.throws(() => parseInitFlags(without('--approver')), usage('--approver dev=KEY is missing'));
    assert.throws(
      () => parseInitFlags(parseCommandArgs(trustInitCommand, [...argv, '--approver', 'qa=q.pub'])),
      usage('--approver qa is not one of dev, staging, production'),
    );
    assert.throws(
      () => parseInitFlags(parseCommandArgs(trustInitCommand, [...argv, '--timestamp-key', 'ts2.key'])),
      usage('--timestamp-key takes one key'),
    );
    assert.throws(
      () => parseInitFlags(parseCommandArgs(trustInitCommand, [...argv, '--expires', 'production=30d'])),
      usage('the role must be one of root, targets, snapshot, timestamp'),
    );
  });
});
