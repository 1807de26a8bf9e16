/** What a process holds open, read from /proc: for tests that a volume was released. */
import { readdir, readlink } from 'node:fs/promises';

/** The paths process `pid` has open (its /proc/PID/fd links); empty once it has exited. */
export async function openPaths(pid: number | undefined): Promise<string[]> {
  if (pid === undefined) return [];
  const dir = `/proc/${pid}/fd`;
  const fds = await readdir(dir).catch(() => [] as string[]); // exited: it holds nothing
  const out: string[] = [];
  for (const fd of fds) {
    const target = await readlink(`${dir}/${fd}`).catch(() => undefined); // closed meanwhile
    if (target !== undefined) out.push(target);
  }
  return out;
}
