import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
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

/** Loop devices still attached to any of these image files. */
export async function leakedLoopDevices(images: readonly string[]): Promise<string[]> {
  const found: string[] = [];
  for (const img of images) {
    const out = (await tool('losetup', ['-j', img]).catch(() => '')).trim();
    if (out) found.push(`loop device still attached: ${out}`);
  }
  return found;
}

/** Files under `dir` that look like temp files a crash or an interrupted write left behind. */
export async function leftoverTempFiles(dir: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (d: string): Promise<void> => {
    const entries = await readdir(d, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (/\.tmp-\d+-\d+$|\.lifeboat-partial-\d+$/.test(e.name)) found.push(`temp file ${p}`);
    }
  };
  await walk(dir);
  return found;
}

/** Whatever is in a directory (the run's TMPDIR: empty once every process has ended). */
export async function entriesIn(dir: string): Promise<string[]> {
  return (await readdir(dir).catch(() => [] as string[])).map((n) => `temp file ${join(dir, n)}`);
}
