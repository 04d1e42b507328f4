import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '@apx/core/testing/hygiene';
import { FLOORS_FILE, RollbackFloors } from './floors.js';

describe('rollback floors (APX_STATE_DIR)', () => {
  it('only go up, and are read back by the next start', async () => {
    const dir = tempDir('apx-floors-');
    const floors = await RollbackFloors.open(dir);
    await floors.raise('pb-pay-v1', '1.1.0');
    await floors.raise('pb-pay-v1', '1.0.0');
    await floors.raise('pb-admin', '2.0.0-rc.1');
    await floors.raise('pb-admin', '2.0.0');
    const again = await RollbackFloors.open(dir);
    assert.equal(again.get('pb-pay-v1'), '1.1.0');
    assert.equal(again.get('pb-admin'), '2.0.0');
    assert.deepEqual(readdirSync(dir), [FLOORS_FILE], 'no temp file left behind');
  });

  it('refuse to start on a damaged file rather than forget the floors', async () => {
    const dir = tempDir('apx-floors-');
    writeFileSync(join(dir, FLOORS_FILE), '{"floors": {"pb-pay-v1": "latest"}}');
    await assert.rejects(RollbackFloors.open(dir), {
      code: 'STATE_UNAVAILABLE',
      message: `invalid rollback floors ${join(dir, FLOORS_FILE)}: entry "pb-pay-v1" is not a policy id with a version`,
    });
    writeFileSync(join(dir, FLOORS_FILE), '{');
    await assert.rejects(RollbackFloors.open(dir), { message: /: not JSON$/ });
  });

  it('fail the write (and so the load) when the directory is not writable', async () => {
    const dir = tempDir('apx-floors-');
    const floors = await RollbackFloors.open(join(dir, 'state'));
    writeFileSync(join(dir, 'blocker'), '');
    const blocked = await RollbackFloors.open(dir);
    // A directory entry where the temp file's directory should be makes every write fail.
    Object.assign(blocked, { dir: join(dir, 'blocker') });
    await assert.rejects(blocked.raise('pb-pay-v1', '1.0.0'), { code: 'STATE_UNAVAILABLE' });
    await floors.raise('pb-pay-v1', '1.0.0');
    assert.match(readFileSync(join(dir, 'state', FLOORS_FILE), 'utf8'), /"pb-pay-v1": "1.0.0"/);
  });
});
