import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { constants } from 'node:fs';
import {
  mkdir,
  mkdtemp,
  open,
  readdir,
  readlink,
  rm,
  rmdir,
  stat,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isDrError, systemCode } from '../../../../core/errors.js';
import {
  removeStaleInstances,
  TraceTracker,
  type TraceTrackerOptions,
} from '../../../../replicator/capture/trace-tracker.js';
import { skipBecause } from '../../../helpers/skip.js';

const execFileAsync = promisify(execFile);
const BS = 4096;
const MiB = 1024 * 1024;

/** Runs a tool, bounded: a hung losetup or dd fails the test instead of stalling it. */
async function tool(cmd: string, args: string[]): Promise<string> {
  const { stdout } = await execFileAsync(cmd, args, { timeout: 30_000 });
  return stdout;
}

async function installed(cmd: string, args = ['--version']): Promise<boolean> {
  return tool(cmd, args).then(
    () => true,
    () => false, // missing or unusable: the tests that need it are skipped with a reason
  );
}

let work: string;
/** The tracefs these tests use, and one this file mounted itself (unmounted in afterAll). */
let tracefs = '/sys/kernel/tracing';
let mountedTracefs: string | undefined;
/** Why the tests on real devices cannot run here. */
let missing: string | undefined;

/** What each test created, removed in afterEach whether the test passed or not. */
const trackers: TraceTracker[] = [];
const children: ChildProcess[] = [];
const instances: string[] = [];
const mounts: string[] = [];
const loops: string[] = [];

async function environmentProblem(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'loop devices and tracefs need root';
  if (!(await installed('losetup'))) return 'losetup (util-linux) is missing';
  if (!(await installed('dd'))) return 'dd (coreutils) is missing';
  const places = ['/sys/kernel/tracing', '/sys/kernel/debug/tracing'];
  const found = [];
  for (const p of places) if (await exists(join(p, 'instances'))) found.push(p);
  if (found[0] !== undefined) {
    tracefs = found[0];
  } else {
    // Mounted privately, so unmounting it afterwards cannot disturb anyone else's tracing.
    const mnt = join(work, 'tracefs');
    await mkdir(mnt);
    try {
      await tool('mount', ['-t', 'tracefs', 'nodev', mnt]);
    } catch (err) {
      return `tracefs is not mounted and cannot be mounted here (${String(err).split('\n')[0]})`;
    }
    tracefs = mountedTracefs = mnt;
  }
  if (!(await exists(join(tracefs, 'events/block/block_bio_queue'))))
    return 'this kernel has no block_bio_queue tracepoint';
  return undefined;
}

function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false, // any failure means the feature is not there
  );
}

/** A loop device over a fresh sparse image file. */
async function attachLoop(size = 16 * MiB): Promise<string> {
  const image = join(work, `image-${loops.length}-${Date.now()}`);
  const fh = await open(image, 'w');
  await fh.truncate(size);
  await fh.close();
  const dev = (await tool('losetup', ['--find', '--show', image])).trim();
  loops.push(dev);
  return dev;
}

async function start(device: string, o: Partial<TraceTrackerOptions> = {}): Promise<TraceTracker> {
  const t = await TraceTracker.start({ device, blockSize: BS, tracefs, ...o });
  trackers.push(t);
  return t;
}

/** One direct (uncached) write of random bytes; offset and length in bytes, multiples of 512. */
function ddWrite(dev: string, offset: number, length: number): Promise<string> {
  return tool('dd', [
    'if=/dev/urandom',
    `of=${dev}`,
    `bs=${length}`,
    'count=1',
    `seek=${offset}`,
    'oflag=direct,seek_bytes',
    'conv=notrunc',
    'status=none',
  ]);
}

function ddRead(dev: string, offset: number, length: number): Promise<string> {
  return tool('dd', [
    `if=${dev}`,
    'of=/dev/null',
    `bs=${length}`,
    'count=1',
    `skip=${offset}`,
    'iflag=direct,skip_bytes',
    'status=none',
  ]);
}

function range(first: number, last: number): number[] {
  return Array.from({ length: last - first + 1 }, (_, i) => first + i);
}

/** Pids of processes that hold `path` open. */
async function holders(path: string): Promise<number[]> {
  const found: number[] = [];
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]); // the process ended meanwhile
    for (const fd of fds) {
      const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => ''); // closed meanwhile
      if (target === path) found.push(Number(pid));
    }
  }
  return found;
}

async function until(what: string, check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await sleep(20);
  }
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'lifeboat-trace-'));
  missing = await environmentProblem();
});

afterEach(async () => {
  const problems: unknown[] = [];
  const attempt = async (step: () => Promise<unknown>) => {
    await step().catch((err: unknown) => problems.push(err));
  };
  for (const t of trackers.splice(0)) await attempt(() => t.close());
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
  for (const dir of instances.splice(0)) {
    await attempt(() =>
      rmdir(dir).catch((e) => (systemCode(e) === 'ENOENT' ? 0 : Promise.reject(e))),
    );
  }
  for (const mnt of mounts.splice(0)) await attempt(() => tool('umount', [mnt]));
  for (const dev of loops.splice(0)) await attempt(() => tool('losetup', ['-d', dev]));
  if (problems.length > 0) throw new AggregateError(problems, 'cleanup after the test failed');
});

afterAll(async () => {
  if (mountedTracefs) await tool('umount', [mountedTracefs]);
  await rm(work, { recursive: true, force: true });
});

describe('TraceTracker on a loop device', () => {
  it('reports exactly the blocks written, in its own block size, and not those read', async (ctx) => {
    if (missing) return skipBecause(ctx, missing);
    const dev = await attachLoop();
    const t = await start(dev);
    const big = await start(dev, { blockSize: 64 * 1024 });
    expect(t.drain()).toMatchObject({ unsure: true, reason: 'tracker started' });
    expect(big.drain()).toMatchObject({ unsure: true, reason: 'tracker started' });

    await ddWrite(dev, 2 * BS, BS); // block 2
    await ddWrite(dev, 10 * BS + 1024, 512); // inside block 10
    await ddWrite(dev, 20 * BS - 512, 1024); // the end of block 19 and the start of 20
    await ddRead(dev, 30 * BS, 4 * BS);
    await t.sync();
    await big.sync();

    expect(t.pendingCount()).toBe(4);
    expect(t.drain()).toEqual({ blocks: [2, 10, 19, 20], unsure: false });
    expect(t.pendingCount()).toBe(0);
    expect(t.drain()).toEqual({ blocks: [], unsure: false });
    expect(big.drain()).toEqual({ blocks: [0, 1], unsure: false });
  });

  it('reports discarded and zeroed ranges as changed', async (ctx) => {
    if (missing) return skipBecause(ctx, missing);
    if (!(await installed('blkdiscard'))) return skipBecause(ctx, 'blkdiscard is missing');
    const dev = await attachLoop();
    const t = await start(dev);
    t.drain();

    await tool('blkdiscard', ['-f', '-o', String(40 * BS), '-l', String(16 * BS), dev]);
    await tool('blkdiscard', ['-f', '-z', '-o', String(60 * BS), '-l', String(4 * BS), dev]);
    await t.sync();

    expect(t.drain()).toEqual({ blocks: [...range(40, 55), ...range(60, 63)], unsure: false });
  });

  it('sees only its own device', async (ctx) => {
    if (missing) return skipBecause(ctx, missing);
    const mine = await attachLoop();
    const other = await attachLoop();
    const t = await start(mine);
    t.drain();

    await ddWrite(other, 5 * BS, BS);
    await ddWrite(mine, 7 * BS, BS);
    await t.sync();

    expect(t.drain()).toEqual({ blocks: [7], unsure: false });
  });

  it('sync() waits for a write made durable just before it', async (ctx) => {
    if (missing) return skipBecause(ctx, missing);
    const dev = await attachLoop();
    const t = await start(dev);
    t.drain();

    const fh = await open(dev, constants.O_WRONLY);
    try {
      await fh.write(Buffer.alloc(BS, 0xab), 0, BS, 3 * BS);
      await fh.sync(); // the page cache is written back here: the bio is queued before sync() below
    } finally {
      await fh.close();
    }
    await t.sync();

    expect(t.drain()).toEqual({ blocks: [3], unsure: false });
  });

  it('reports the blocks a file on ext4 was written to', async (ctx) => {
    if (missing) return skipBecause(ctx, missing);
    if (!(await installed('mkfs.ext4', ['-V'])) || !(await installed('filefrag', ['-V'])))
      return skipBecause(ctx, 'e2fsprogs is missing (apt-get install -y e2fsprogs)');
    const dev = await attachLoop(64 * MiB);
    await tool('mkfs.ext4', ['-q', '-F', '-b', String(BS), dev]);
    const mnt = join(work, `mnt-${Date.now()}`);
    await mkdir(mnt);
    await tool('mount', [dev, mnt]);
    mounts.push(mnt);
    const t = await start(dev);
    t.drain();

    const file = join(mnt, 'data');
    const fh = await open(file, 'w');
    try {
      await fh.write(Buffer.alloc(16 * BS, 0x5a));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await t.sync();
    const drained = t.drain();

    // ext4 blocks are the tracker's blocks here (both 4 KiB, the file system starts at 0).
    const extents = await tool('filefrag', ['-v', '-b4096', file]);
    const fileBlocks = [
      ...extents.matchAll(/^\s*\d+:\s+\d+\.\.\s*\d+:\s+(\d+)\.\.\s*(\d+):/gm),
    ].flatMap((m) => range(Number(m[1]), Number(m[2])));
    expect(fileBlocks).toHaveLength(16);
    expect(drained.unsure).toBe(false);
    expect(drained.blocks).toEqual(expect.arrayContaining(fileBlocks));
  });

  it('close() ends the reader and removes the instance, and can be called again', async (ctx) => {
    if (missing) return skipBecause(ctx, missing);
    const dev = await attachLoop();
    const t = await start(dev);
    expect(basename(t.instance)).toMatch(new RegExp(`^lifeboat-${process.pid}-[0-9a-f]+$`));
    expect((await stat(t.instance)).isDirectory()).toBe(true);
    const pipe = join(t.instance, 'trace_pipe');
    expect(await holders(pipe)).toHaveLength(1);

    await t.close();
    await t.close();

    expect(await exists(t.instance)).toBe(false);
    expect(await holders(pipe)).toEqual([]);
    const err = await t.sync().catch((e: unknown) => e);
    expect(isDrError(err, 'usage')).toBe(true);
    expect(String(err)).toContain(dev);
    expect(t.drain()).toMatchObject({
      unsure: true,
      reason: expect.stringContaining('tracker closed'),
    });
  });

  it('stays unsure, and refuses sync(), once its reader has been killed', async (ctx) => {
    if (missing) return skipBecause(ctx, missing);
    const dev = await attachLoop();
    const t = await start(dev);
    t.drain();
    const [reader] = await holders(join(t.instance, 'trace_pipe'));
    expect(reader).toBeDefined();

    process.kill(reader as number, 'SIGKILL');
    // Every drain from now on is unsure, so polling drain() loses nothing.
    await until('the tracker notices', async () => t.drain().unsure);
    const err = await t.sync().catch((e: unknown) => e);

    expect(isDrError(err, 'usage')).toBe(true);
    expect(String(err)).toMatch(/trace reader stopped \(SIGKILL\)/);
    for (const drained of [t.drain(), t.drain()]) {
      expect(drained).toMatchObject({ unsure: true, reason: 'trace reader stopped (SIGKILL)' });
    }
  });

  it('marks the drain unsure when the trace buffer overruns, and is sure again after', async (ctx) => {
    if (missing) return skipBecause(ctx, missing);
    const dev = await attachLoop();
    const t = await start(dev, { bufferKiB: 4 });
    t.drain();

    // The synchronous call blocks this event loop, so nothing empties the reader's pipe while
    // dd queues 16384 writes: the reader stalls and a few KiB of ring buffer cannot hold them.
    execFileSync(
      'dd',
      ['if=/dev/zero', `of=${dev}`, 'bs=512', 'count=16384', 'oflag=direct', 'status=none'],
      { timeout: 60_000 },
    );
    await t.sync(10_000);
    const stormy = t.drain();
    expect(stormy.unsure).toBe(true);
    expect(stormy.reason).toMatch(/^trace buffer overran: \d+ events lost$/);

    await ddWrite(dev, 3 * BS, BS);
    await t.sync();
    expect(t.drain()).toEqual({ blocks: [3], unsure: false });
  });
});

describe('stale instances', () => {
  it('removes those of dead processes, even one a leftover reader keeps open, and keeps live ones', async (ctx) => {
    if (missing) return skipBecause(ctx, missing);
    const gone = spawn('true');
    const deadPid = await new Promise<number>((resolve) =>
      gone.on('exit', () => resolve(gone.pid ?? 0)),
    );
    const dead = `lifeboat-${deadPid}-0badc0de`;
    const live = `lifeboat-${process.pid}-0c0ffee0`;
    for (const name of [dead, live]) {
      await mkdir(join(tracefs, 'instances', name));
      instances.push(join(tracefs, 'instances', name));
    }
    // What a SIGKILLed agent leaves: its cat still blocked on trace_pipe, its stdout pipe unread.
    const pipe = join(tracefs, 'instances', dead, 'trace_pipe');
    const orphan = spawn('cat', [pipe], { stdio: ['ignore', 'pipe', 'ignore'] });
    children.push(orphan);
    const orphanExit = new Promise<void>((resolve) => orphan.on('exit', () => resolve()));
    orphan.stdout.destroy();
    await until('the leftover reader opens trace_pipe', async () =>
      (await holders(pipe)).includes(orphan.pid ?? -1),
    );

    const removed = await removeStaleInstances(tracefs);

    expect(removed).toContain(dead);
    expect(removed).not.toContain(live);
    expect(await exists(join(tracefs, 'instances', dead))).toBe(false);
    expect(await exists(join(tracefs, 'instances', live))).toBe(true);
    await orphanExit;
  });
});

describe('where tracing cannot be used', () => {
  it('unavailable() and start() name a regular file as not a block device', async () => {
    const file = join(work, 'plain.img');
    await writeFile(file, Buffer.alloc(BS));

    expect(await TraceTracker.unavailable(file)).toMatch(
      /plain\.img is not a block device.*losetup/,
    );
    const err = await TraceTracker.start({ device: file, blockSize: BS }).catch((e: unknown) => e);
    expect(isDrError(err, 'volume_unreadable')).toBe(true);
    expect(err).toMatchObject({ subject: file });
    expect(String(err)).toContain('To resolve, attach it as a loop device');
  });

  it('unavailable() says a missing device does not exist', async () => {
    expect(await TraceTracker.unavailable(join(work, 'nothing'))).toMatch(/nothing does not exist/);
  });

  it('unavailable() gives the mount command where tracefs is not mounted', async (ctx) => {
    if (missing) return skipBecause(ctx, missing);
    const dev = await attachLoop();
    const empty = join(work, `not-tracefs-${Date.now()}`);
    await mkdir(empty);

    expect(await TraceTracker.unavailable(dev, tracefs)).toBeUndefined();
    expect(await TraceTracker.unavailable(dev, empty)).toBe(
      `tracefs is not mounted at ${empty}; mount it with \`mount -t tracefs nodev ${empty}\``,
    );
  });

  it('start() refuses a block size that is not a power of two', async () => {
    const err = await TraceTracker.start({ device: '/dev/null', blockSize: 3000 }).catch(
      (e: unknown) => e,
    );
    expect(isDrError(err, 'usage')).toBe(true);
    expect(String(err)).toContain('3000');
  });
});
