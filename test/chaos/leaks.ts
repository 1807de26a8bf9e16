// What a chaos round may leave behind and must not: processes, trace instances, temp files, loop devices, mounts, Redis keys.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { tool } from '../helpers/loop-device.js';

const INSTANCE = /^lifeboat-(\d+)-/;

/** A process's parent pid and whether its environment carries `marker` (undefined when it is gone). */
async function processInfo(
  pid: number,
  marker: string,
): Promise<{ ppid: number; ours: boolean } | undefined> {
  try {
    const env = await readFile(`/proc/${pid}/environ`);
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    return { ppid, ours: env.includes(marker) };
  } catch {
    return undefined; // exited while we looked, or not ours to read
  }
}

/**
 * Processes of this run (their environment carries `marker`) that are
 * neither one of `live` nor a child of one: what a crash or a stop left behind.
 */
export async function leakedProcesses(marker: string, live: readonly number[]): Promise<string[]> {
  const found: string[] = [];
  const needle = `LIFEBOAT_CHAOS=${marker}\0`;
  for (const name of await readdir('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const info = await processInfo(pid, needle);
    if (!info?.ours || live.includes(pid) || live.includes(info.ppid)) continue;
    const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    found.push(`process ${pid} (${cmd.replaceAll('\0', ' ').trim().slice(0, 120)})`);
  }
  return found;
}

/** Trace instances made by one of `pids` whose process is not in `live`. */
export async function leakedTraceInstances(
  tracefs: string | undefined,
  pids: ReadonlySet<number>,
  live: readonly number[],
): Promise<string[]> {
  if (!tracefs) return [];
  const names = await readdir(join(tracefs, 'instances')).catch(() => [] as string[]);
  return names
    .filter((n) => {
      const pid = Number(INSTANCE.exec(n)?.[1] ?? 0);
      return pids.has(pid) && !live.includes(pid);
    })
    .map((n) => `trace instance ${join(tracefs, 'instances', n)}`);
}

/**
 * Loop devices still attached to any of these image files. A device set to clear itself detaches
 * when its last user lets go, which the kernel finishes after umount returns (seconds on a busy
 * machine): only a device still attached after `settleMs` is a leak.
 */
export async function leakedLoopDevices(
  images: readonly string[],
  settleMs = 30_000,
): Promise<string[]> {
  const attached = async () => {
    const found: string[] = [];
    for (const img of images) {
      const out = (await tool('losetup', ['-j', img]).catch(() => '')).trim();
      if (out) found.push(`loop device still attached: ${out}`);
    }
    return found;
  };
  const end = Date.now() + settleMs;
  for (;;) {
    const found = await attached();
    if (found.length === 0 || Date.now() > end) return found;
    await sleep(250);
  }
}

/** Files under `dir` that look like temp files a crash or an interrupted write left behind. */
export async function leftoverTempFiles(dir: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (d: string): Promise<void> => {
    const entries = await readdir(d, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (/\.tmp-\d+-\d+$|\.lifeboat-partial-\d+(-[0-9a-f]+)?$/.test(e.name))
        found.push(`temp file ${p}`);
    }
  };
  await walk(dir);
  return found;
}

/** The pid a temp file's name carries (`<file>.tmp-<pid>-<ms>`, `<file>.lifeboat-partial-<pid>[-<hex>]`). */
function tempFilePid(name: string): number | undefined {
  const m = /\.tmp-(\d+)-\d+$|\.lifeboat-partial-(\d+)(?:-[0-9a-f]+)?$/.exec(name);
  return m ? Number(m[1] ?? m[2]) : undefined;
}

/**
 * Temp files under `dir` whose writer is not one of `live`: a live process may be writing one
 * now, a dead one's is a leak (the rename never came, nobody removes it).
 */
export async function leakedTempFiles(dir: string, live: readonly number[]): Promise<string[]> {
  const found: string[] = [];
  for (const f of await leftoverTempFiles(dir)) {
    const pid = tempFilePid(f);
    if (pid === undefined || !live.includes(pid)) found.push(f);
  }
  return found;
}

/** Loop devices whose backing file is under `dir`: `device backing-file` each. */
export async function loopDevicesUnder(dir: string): Promise<string[]> {
  const out = await tool('losetup', ['--list', '--noheadings', '--output', 'NAME,BACK-FILE']).catch(
    () => '', // no losetup (image mode on a machine without it): no loop devices to leak
  );
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter(([name, back]) => name && back?.startsWith(`${dir}/`))
    .map(([name, back]) => `${name} ${back}`);
}

/** Mount points under `dir`, from /proc/self/mountinfo. */
export async function mountsUnder(dir: string): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  return info
    .split('\n')
    .map((l) => (l.split(' ')[4] ?? '').replace(/\\040/g, ' '))
    .filter((m) => m.startsWith(`${dir}/`));
}

/** What is attached or mounted under a run's directory: taken at the start, compared after each round. */
export interface Attachments {
  loops: string[];
  mounts: string[];
}

export async function attachmentsUnder(dir: string): Promise<Attachments> {
  return { loops: await loopDevicesUnder(dir), mounts: await mountsUnder(dir) };
}

/**
 * Loop devices and mounts under `dir` that were not there at `baseline`, still there after
 * `settleMs` (a self-clearing loop device detaches only once the kernel has let go of it).
 */
export async function newAttachments(
  dir: string,
  baseline: Attachments,
  settleMs = 30_000,
): Promise<string[]> {
  const end = Date.now() + settleMs;
  for (;;) {
    const now = await attachmentsUnder(dir);
    const found = [
      ...now.loops.filter((l) => !baseline.loops.includes(l)).map((l) => `loop device ${l}`),
      ...now.mounts.filter((m) => !baseline.mounts.includes(m)).map((m) => `mount ${m}`),
    ];
    if (found.length === 0 || Date.now() > end) return found;
    await sleep(250);
  }
}

/**
 * Keys in Redis that never expire and match none of `allowed`: state a round should not leave
 * (a lock, a flag, a marker without its TTL grows without end).
 */
export async function keysWithoutTtl(url: string, allowed: readonly RegExp[]): Promise<string[]> {
  const r = new Redis(url, { maxRetriesPerRequest: 1, connectTimeout: 5000, lazyConnect: true });
  r.on('error', () => undefined); // the command below fails and says so
  try {
    await r.connect();
    const found: string[] = [];
    let cursor = '0';
    for (let i = 0; i < 10_000; i++) {
      const [next, keys] = await r.scan(cursor, 'COUNT', 500);
      for (const k of keys) {
        if (allowed.some((a) => a.test(k))) continue;
        if ((await r.pttl(k)) === -1) found.push(`Redis key ${k} (no TTL)`);
      }
      cursor = next;
      if (cursor === '0') break;
    }
    return found;
  } finally {
    r.disconnect();
  }
}

/** Whatever is in a directory (the run's TMPDIR: empty once every process has ended). */
export async function entriesIn(dir: string): Promise<string[]> {
  return (await readdir(dir).catch(() => [] as string[])).map((n) => `temp file ${join(dir, n)}`);
}
