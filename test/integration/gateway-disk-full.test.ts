import { execFile } from 'node:child_process';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import {
  dr,
  scribble,
  type TestHome,
  testHome,
  updateConfig,
  writeImage,
} from '../helpers/lifeboat-home.js';
import { startDr, stopAll } from '../helpers/processes.js';
import { restoreLatest } from '../helpers/restore.js';
import { skipBecause } from '../helpers/skip.js';

const run = promisify(execFile);

/** Fills a file system to the last block with files under `dir`. */
async function fill(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  let n = 0;
  for (let step = 64 * 1024 * 1024; step >= 4096; ) {
    const ok = await run('fallocate', ['-l', String(step), join(dir, String(n))]).then(
      () => true,
      () => false, // no room for this step: try a smaller one
    );
    if (ok) n++;
    else step = Math.floor(step / 2);
  }
}

// Found by the chaos suite (gateway-kill-full): every session open rewrote the
// catalog, so a gateway whose disk was full answered an agent's session with an
// internal error, and the agent gave up (or rescanned everything) instead of waiting.
describe('a gateway whose disk is full', () => {
  let t: TestHome;
  let mnt: string;
  beforeEach(async (ctx: TestContext) => {
    if (process.getuid?.() !== 0) skipBecause(ctx, 'mounting a small tmpfs needs root');
    t = await testHome();
    mnt = join(t.dir, 'store-mnt');
    await mkdir(mnt);
    await run('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', mnt]);
  });
  afterEach(async () => {
    await stopAll();
    if (mnt) await run('umount', ['-l', mnt]).catch(() => undefined); // not mounted when skipped
    await t?.cleanup();
  });

  it('lets a restarted agent open its session and wait, then catches up when there is room', async () => {
    const image = join(t.dir, 'a.img');
    await writeImage(image, 4 * 1024 * 1024);
    await dr(['--home', t.home, 'app', 'add', 'web', '--volume', `a=${image}`]);
    await updateConfig(t.home, (doc) => {
      doc.setIn(['gateway', 'store'], join(mnt, 'store'));
      doc.setIn(['gateway', 'minFreeSpace'], '1MiB');
    });
    const gateway = startDr(['gateway'], { DR_HOME: t.home });
    await gateway.waitFor(/gateway listening/);
    const first = await dr(
      ['--home', t.home, 'agent', '--app', 'web', '--once', '--tracker', 'scan'],
      { DR_LOG_LEVEL: 'silent' },
    );
    expect(first.code).toBe(0);
    await fill(join(mnt, 'ballast'));
    await scribble(image, 20);
    const agent = startDr(['agent', '--app', 'web', '--once', '--tracker', 'scan'], {
      DR_HOME: t.home,
    });
    await agent.waitFor(/below gateway\.minFreeSpace|the gateway store is full/, 30_000);
    expect(agent.child.exitCode).toBeNull(); // waiting, not gone
    expect(agent.output()).not.toContain('internal gateway error');
    await rm(join(mnt, 'ballast'), { recursive: true });
    expect(await agent.exited).toBe(0);
    const out = join(t.dir, 'r.img');
    expect((await restoreLatest(t, 'a', out)).code).toBe(0);
    expect((await readFile(out)).equals(await readFile(image))).toBe(true);
    expect(gateway.output()).not.toContain('request failed');
  });
});
