// The rig of the trace tracker's tests: loop devices over sparse images, direct writes and reads
// with dd, the tracefs to use (mounted here if need be), and everything a test made removed after
// it. Its state is exported as live bindings.
import { type ChildProcess, execFile } from 'node:child_process';
import { mkdir, mkdtemp, open, readdir, readlink, rm, rmdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { systemCode } from '../../core/errors.js';
import { TraceTracker, type TraceTrackerOptions } from '../../replicator/capture/trace-tracker.js';

const execFileAsync = promisify(execFile);
export const BS = 4096;
export const MiB = 1024 * 1024;

/** Runs a tool, bounded: a hung losetup or dd fails the test instead of stalling it. */
export async function tool(cmd: string, args: string[]): Promise<string> {
  const { stdout } = await execFileAsync(cmd, args, { timeout: 30_000 });
  return stdout;
}

export async function installed(cmd: string, args = ['--version']): Promise<boolean> {
  return tool(cmd, args).then(
    () => true,
    () => false, // missing or unusable: the tests that need it are skipped with a reason
  );
}

export let work: string;
/** The tracefs these tests use, and one this file mounted itself (unmounted in afterAll). */
export let tracefs = '/sys/kernel/tracing';
let mountedTracefs: string | undefined;
/** Why the tests on real devices cannot run here. */
export let missing: string | undefined;

/** What each test created, removed in afterEach whether the test passed or not. */
const trackers: TraceTracker[] = [];
export const children: ChildProcess[] = [];
export const instances: string[] = [];
export const mounts: string[] = [];
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

export function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false, // any failure means the feature is not there
  );
}

/** A loop device over a fresh sparse image file. */
export async function attachLoop(size = 16 * MiB): Promise<string> {
  const image = join(work, `image-${loops.length}-${Date.now()}`);
  const fh = await open(image, 'w');
  await fh.truncate(size);
  await fh.close();
  const dev = (await tool('losetup', ['--find', '--show', image])).trim();
  loops.push(dev);
  return dev;
}

export async function start(
  device: string,
  o: Partial<TraceTrackerOptions> = {},
): Promise<TraceTracker> {
  const t = await TraceTracker.start({ device, blockSize: BS, tracefs, ...o });
  trackers.push(t);
  return t;
}

/** One direct (uncached) write of random bytes; offset and length in bytes, multiples of 512. */
export function ddWrite(dev: string, offset: number, length: number): Promise<string> {
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

export function ddRead(dev: string, offset: number, length: number): Promise<string> {
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

export function range(first: number, last: number): number[] {
  return Array.from({ length: last - first + 1 }, (_, i) => first + i);
}

/** Pids of processes that hold `path` open. */
export async function holders(path: string): Promise<number[]> {
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

export async function until(
  what: string,
  check: () => Promise<boolean>,
  ms = 10_000,
): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await sleep(20);
  }
}

/** Registers the hooks of the calling test file: the work folder and tracefs, and the cleanup. */
export function useTraceRig(): void {
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
}
