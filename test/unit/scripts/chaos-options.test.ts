// `npm run chaos` refuses a bad --store (and the object store's faults without it) before it starts anything.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const script = fileURLToPath(new URL('../../../scripts/chaos.mjs', import.meta.url));
const chaos = (args: string[]) =>
  spawnSync(process.execPath, [script, ...args], { encoding: 'utf8' });

describe('npm run chaos -- --store', () => {
  it.each([
    [['--store', 'gcs'], /--store must be s3 \(or left out for the folder store\), not "gcs"/],
    [['--kinds', 'rgw-kill'], /--kinds: rgw-kill needs --store s3/],
    [['--kinds', 'gateway-machine-loss,agent-kill'], /gateway-machine-loss needs --store s3/],
    [['--store', 's3', '--round-trip'], /--store s3 runs the fault rounds, not --round-trip/],
    [['--store', 's3', '--kinds', 'osd-crash'], /unknown fault "osd-crash"/],
  ])('%j is refused with the reason and the usage, exit 2', (args, reason) => {
    const r = chaos(args);
    expect(r.status).toBe(2);
    expect(r.stderr.split('\n')[0]).toMatch(reason);
    expect(r.stderr).toContain('--store s3');
  });
});
