// The rig of the consistent-cut tests: a test home, loop devices with ext4 (app web, frozen at
// its mount point), the record writer, and restoring a point to check its ext4 and records.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, beforeEach, expect, type TestContext } from 'vitest';
import { dr, type TestHome, testHome } from './lifeboat-home.js';
import { loopProblem, Rig, tool } from './loop-device.js';
import { stopAll } from './processes.js';
import { checkRecordPrefix } from './records.js';
import { skipBecause } from './skip.js';
import { until as untilAnswer } from './wait-for.js';

const writerScript = fileURLToPath(new URL('../fixtures/record-writer.mjs', import.meta.url));
export const quiet = { DR_LOG_LEVEL: 'silent' };

export interface Writer {
  child: ChildProcess;
  stop: () => Promise<number>;
}

export function startWriter(file: string, rate = 200): Writer {
  const child = spawn(process.execPath, [writerScript, file, String(rate)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout?.on('data', (c: Buffer) => {
    out += c.toString();
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    child,
    stop: async () => {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
      return Number(out.trim());
    },
  };
}

/** Polls until `probe` answers, failing after `ms`. */
export const until = <T>(what: string, probe: () => Promise<T | undefined>, ms = 60_000) =>
  untilAnswer(what, probe, ms);

export interface CutsRig {
  t: TestHome;
  rig: Rig;
  /** Writers stopped after the test (a test that stops one itself empties this). */
  writers: Writer[];
  /** Restores a point, checks the file system and reads the record prefix from it. */
  checkPoint(point: number): Promise<number>;
  /** `dr agent --app web --once --json --tracker scan`, quietly. */
  onceScan(): ReturnType<typeof dr>;
  /** Re-adds app web on the device, frozen at the mount point, with these quiesce options. */
  reprotect(device: string, mount: string, ...quiesce: string[]): ReturnType<typeof dr>;
  /** An ext4 on a 64 MiB loop device, protected as app web with fsfreeze on its mount point. */
  protect(): Promise<{ device: string; mount: string; tracefs: string }>;
}

/** Registers the calling describe block's hooks; skips where loop devices do not work. */
export function useCutsRig(): CutsRig {
  let problem: string | undefined;
  const rig = { writers: [] as Writer[] } as CutsRig;
  beforeAll(async () => {
    problem = await loopProblem();
  });
  beforeEach(async (ctx: TestContext) => {
    if (problem) skipBecause(ctx, problem);
    rig.t = await testHome();
    rig.rig = new Rig(rig.t.dir);
  });
  afterEach(async () => {
    for (const w of rig.writers.splice(0)) await w.stop().catch(() => 0); // a test may have stopped it
    await stopAll();
    await rig.rig?.cleanup();
    await rig.t?.cleanup();
  });

  /** Restores a point, checks the file system and reads the record prefix from it. */
  async function checkPoint(point: number): Promise<number> {
    const out = join(rig.t.dir, `point-${point}.img`);
    const r = await dr(
      [
        '--home',
        rig.t.home,
        'restore',
        'web',
        '--point',
        String(point),
        '--volume',
        'data',
        '--to',
        out,
        '--force',
      ],
      quiet,
    );
    expect(r.err).toBe('');
    await tool('e2fsck', ['-n', '-f', out]); // exits non-zero (and throws) on any inconsistency
    const mnt = join(rig.t.dir, `point-${point}-mnt`);
    await mkdir(mnt, { recursive: true });
    await tool('mount', ['-o', 'ro,loop', out, mnt]);
    try {
      return checkRecordPrefix(await readFile(join(mnt, 'records.log')));
    } finally {
      await tool('umount', [mnt]);
    }
  }

  /** `dr agent --app web --once --json --tracker scan`, quietly. */
  const onceScan = () =>
    dr(
      ['--home', rig.t.home, 'agent', '--app', 'web', '--once', '--json', '--tracker', 'scan'],
      quiet,
    );

  /** Re-adds app web on the device, frozen at the mount point, with these quiesce options. */
  const reprotect = (device: string, mount: string, ...quiesce: string[]) =>
    dr([
      '--home',
      rig.t.home,
      'app',
      'add',
      'web',
      '--force',
      '--volume',
      `data=${device}`,
      '--fsfreeze',
      mount,
      ...quiesce,
    ]);

  /** An ext4 on a 64 MiB loop device, protected as app web with fsfreeze on its mount point. */
  async function protect(): Promise<{ device: string; mount: string; tracefs: string }> {
    const tracefs = await rig.rig.tracefs();
    const { device, mount } = await rig.rig.loop('data', 128, true);
    const m = mount as string;
    const r = await dr([
      '--home',
      rig.t.home,
      'app',
      'add',
      'web',
      '--volume',
      `data=${device}`,
      '--fsfreeze',
      m,
    ]);
    expect(r.err).toBe('');
    return { device, mount: m, tracefs };
  }

  Object.assign(rig, { checkPoint, onceScan, reprotect, protect });
  return rig;
}
