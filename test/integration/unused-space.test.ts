/** Whole-volume scans skip image holes and ext4 free space; restored points stay whole. */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import { dr, type TestHome, testHome } from '../helpers/lifeboat-home.js';
import { loopProblem, Rig, tool } from '../helpers/loop-device.js';
import { startDr, stopAll } from '../helpers/processes.js';
import { skipBecause } from '../helpers/skip.js';

const MiB = 1024 * 1024;
/** A pattern no file system writes by itself: found in a restored image only if freed blocks were copied. */
const MARKER = Buffer.from('LIFEBOAT-FREED-BLOCK-MARKER-2f9c1e;');

let loopWhy: string | undefined;
let xfsIoWhy: string | undefined;
beforeAll(async () => {
  loopWhy = await loopProblem();
  xfsIoWhy = await tool('xfs_io', ['-V']).then(
    () => undefined,
    () => 'xfs_io is not installed (apt-get install xfsprogs)',
  );
});

/** `dr agent --once --tracker scan` as a real process; its report and its log lines. */
async function onceScan(
  t: TestHome,
  ...extra: string[]
): Promise<{ report: { point: { id: number }; bytesSent: number }; log: string }> {
  const p = startDr(['agent', '--app', 'web', '--once', '--json', '--tracker', 'scan', ...extra], {
    DR_HOME: t.home,
    DR_LOG_LEVEL: 'info',
  });
  const code = await p.exited;
  const out = p.output();
  expect(code, out).toBe(0);
  // The report is pretty-printed JSON on standard output; the log lines are one-line JSON.
  const report = /^\{\n {2}"point"[\s\S]*?\n\}$/m.exec(out);
  expect(report, out).not.toBeNull();
  return { report: JSON.parse((report as RegExpExecArray)[0]), log: out };
}

async function restore(t: TestHome, point: number, to: string): Promise<void> {
  const r = await dr(
    [
      '--home',
      t.home,
      'restore',
      'web',
      '--point',
      String(point),
      '--volume',
      'data',
      '--to',
      to,
      '--force',
    ],
    { DR_LOG_LEVEL: 'silent' },
  );
  expect(r.err).toBe('');
}

/** Whether `file` holds MARKER anywhere, read in bounded chunks. */
async function holdsMarker(file: string): Promise<boolean> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(4 * MiB + MARKER.length);
    for (let pos = 0; ; pos += 4 * MiB) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) return false;
      if (buf.subarray(0, bytesRead).includes(MARKER)) return true;
      if (bytesRead < buf.length) return false;
    }
  } finally {
    await fh.close();
  }
}

/** Every regular file under `dir`, by relative path. */
async function filesUnder(dir: string, rel = ''): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const e of await readdir(join(dir, rel), { withFileTypes: true })) {
    const r = join(rel, e.name);
    if (e.name === 'lost+found') continue;
    if (e.isDirectory()) for (const [k, v] of await filesUnder(dir, r)) out.set(k, v);
    else if (e.isFile()) out.set(r, await readFile(join(dir, r)));
  }
  return out;
}

describe('whole-volume scans skip what holds no data', () => {
  let t: TestHome;
  let rig: Rig;

  beforeEach(async (ctx: TestContext) => {
    if (xfsIoWhy) skipBecause(ctx, xfsIoWhy);
    t = await testHome();
    rig = new Rig(t.dir);
  });
  afterEach(async () => {
    await stopAll();
    await rig?.cleanup();
    await t?.cleanup();
  });

  it('an image file: holes are zeros without being read, and the restored image equals the source', async () => {
    const image = join(t.dir, 'data.img');
    const fh = await open(image, 'w');
    for (const at of [0, 100 * MiB, 250 * MiB])
      await fh.write(randomBytes(2 * MiB), 0, 2 * MiB, at);
    await fh.truncate(256 * MiB);
    await fh.close();
    expect(
      (await dr(['--home', t.home, 'app', 'add', 'web', '--volume', `data=${image}`])).err,
    ).toBe('');
    await t.startGateway();
    const first = await onceScan(t);
    expect(first.log).toMatch(/"source":"holes".*unused space read as zeros/);
    const zero = /"zeroBytes":(\d+)/.exec(first.log);
    expect(Number(zero?.[1])).toBeGreaterThanOrEqual(240 * MiB);
    const out = join(t.dir, 'restored.img');
    await restore(t, first.report.point.id, out);
    await tool('cmp', [out, image]); // throws when they differ
  });

  it('ext4 on a loop device: free space is zeros, deleted files leave nothing, the point passes e2fsck and its files match', async (ctx: TestContext) => {
    if (loopWhy) skipBecause(ctx, loopWhy);
    const { device, mount } = await rig.loop('data', 512, true);
    const m = mount as string;
    // Real files, some random, and one doomed file full of the marker.
    await mkdir(join(m, 'docs'), { recursive: true });
    for (let i = 0; i < 8; i++)
      await writeFile(join(m, 'docs', `r${i}.bin`), randomBytes((i + 1) * 512 * 1024));
    await writeFile(join(m, 'docs', 'small.txt'), 'hello from the source\n');
    const doomed = Buffer.alloc(24 * MiB);
    for (let o = 0; o + MARKER.length <= doomed.length; o += MARKER.length) MARKER.copy(doomed, o);
    await writeFile(join(m, 'doomed.bin'), doomed);
    await tool('sync', []);
    expect(
      (
        await dr([
          '--home',
          t.home,
          'app',
          'add',
          'web',
          '--volume',
          `data=${device}`,
          '--fsfreeze',
          m,
        ])
      ).err,
    ).toBe('');
    await t.startGateway();

    const first = await onceScan(t);
    expect(first.log).toMatch(/"source":"fsmap".*unused space read as zeros/);
    // Most of the 512 MiB is free: far less than the disk is sent.
    expect(first.report.bytesSent).toBeLessThan(200 * MiB);

    await rm(join(m, 'doomed.bin'));
    await tool('sync', []);
    expect(await holdsMarker(device)).toBe(true); // the freed blocks still hold it on the source
    const second = await onceScan(t);
    const out = join(t.dir, 'point.img');
    await restore(t, second.report.point.id, out);
    await tool('e2fsck', ['-f', '-n', out]); // throws on any inconsistency
    expect(await holdsMarker(out)).toBe(false); // freed blocks came back as zeros
    const mnt = join(t.dir, 'point-mnt');
    await mkdir(mnt, { recursive: true });
    await tool('mount', ['-o', 'ro,loop', out, mnt]);
    try {
      const restored = await filesUnder(mnt);
      const source = await filesUnder(m);
      expect([...restored.keys()].sort()).toEqual([...source.keys()].sort());
      for (const [k, v] of source) expect(restored.get(k)?.equals(v), k).toBe(true);
    } finally {
      await tool('umount', [mnt]);
    }

    // --full-copy reads free space too: the freed blocks' old content is copied again.
    const full = await onceScan(t, '--full-copy');
    expect(full.log).not.toMatch(/unused space read as zeros/);
    const fullOut = join(t.dir, 'full.img');
    await restore(t, full.report.point.id, fullOut);
    expect(await holdsMarker(fullOut)).toBe(true);
  });
});
