import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const demo = fileURLToPath(new URL('../fixtures/replication-walkthrough.mjs', import.meta.url));

describe('the replication walkthrough (a first replication by hand)', () => {
  it('replicates, restores byte-exact and verifies, then cleans up after itself', () => {
    const r = spawnSync(process.execPath, [demo], { encoding: 'utf8', timeout: 120_000 });
    expect(r.stderr).not.toContain('demo failed');
    expect(r.stdout).toContain('restored image is byte-identical to the volume');
    expect(r.stdout).toContain('verify: ok');
    expect(r.status).toBe(0);
  });
});
