import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { armCommand } from '../../../../replicator/capture/thaw-all.js';
import { pidAlive } from '../../../helpers/processes.js';
import { waitFor } from '../../../helpers/wait-for.js';

describe('armCommand: a command forked now, run later', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-arm-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('runs the command only when told, and reports its exit code and first stderr line', async () => {
    const marker = join(dir, 'ran');
    const armed = armCommand('/bin/sh', ['-c', `touch ${marker}; echo 'it failed' >&2; exit 3`]);
    // Held: the shell is there, blocked on its input, and nothing has run.
    expect(armed.pid).toBeGreaterThan(0);
    expect(pidAlive(armed.pid as number)).toBe(true);
    expect(existsSync(marker)).toBe(false);
    const r = await armed.run(10_000);
    expect(r).toMatchObject({ code: 3, signal: null, timedOut: false, stderr: 'it failed' });
    expect(existsSync(marker)).toBe(true);
    // A second run does not run it again.
    expect(await armed.run(10_000)).toBeUndefined();
  });

  it('disarmed, the held shell exits without running the command', async () => {
    const marker = join(dir, 'ran');
    const armed = armCommand('/bin/sh', ['-c', `touch ${marker}`]);
    const pid = armed.pid as number;
    armed.disarm();
    // Once disarmed it cannot be run, and no held shell is left behind.
    expect(await armed.run(10_000)).toBeUndefined();
    await waitFor(`held shell ${pid} to exit`, () => !pidAlive(pid));
    expect(existsSync(marker)).toBe(false);
  });

  it('a command that outlives its bound is killed and reported as timed out', async () => {
    const armed = armCommand('/bin/sleep', ['30']);
    const r = await armed.run(200);
    expect(r?.timedOut).toBe(true);
    expect(r?.code).toBeNull();
    await r?.exited;
  });

  it('a command that cannot start is a failure with its reason, not a hang', async () => {
    const armed = armCommand(join(dir, 'no-such-command'), []);
    const r = await armed.run(10_000);
    expect(r?.code).toBe(127);
    expect(r?.stderr).toMatch(/not found|No such file/);
  });
});
