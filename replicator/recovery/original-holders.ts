/** Who holds an original volume (mounts, holders, open files, loop devices): failback writes none of them. */
import { readdir, readFile, readlink, realpath, stat } from 'node:fs/promises';
import { DrError, systemCode } from '../../core/errors.js';

/** One thing that uses a volume: a mount, a device stacked on it, a process, a loop device. */
export interface Holder {
  /** What it is, in a few words: `mounted at /srv`, `process 1234 (sqlite3)`, `loop device /dev/loop3`. */
  what: string;
  pid?: number;
  command?: string;
  mount?: string;
  device?: string;
}

/** Everything in this machine's view that holds `path` (an image file or a block device). */
export async function findHolders(path: string): Promise<Holder[]> {
  const info = await stat(path).catch((err: unknown) => {
    if (systemCode(err) === 'ENOENT') return undefined; // a lost original: nobody holds it
    throw err;
  });
  if (!info) return [];
  const real = await realpath(path);
  const holders: Holder[] = [];
  if (info.isBlockDevice()) {
    holders.push(...(await deviceHolders(info.rdev)));
    holders.push(...(await processesHolding(real, info.rdev)));
    return holders;
  }
  holders.push(...(await processesHolding(real)));
  // A loop device over the image is a block device of its own: its mounts and users hold it too.
  for (const loop of await loopsBackedBy(real)) {
    holders.push({ what: `attached to loop device ${loop}`, device: loop });
    const l = await stat(loop).catch(() => undefined); // detached meanwhile
    if (l?.isBlockDevice()) {
      for (const h of await deviceHolders(l.rdev)) holders.push({ ...h, device: loop });
      for (const h of await processesHolding(loop, l.rdev)) holders.push({ ...h, device: loop });
    }
  }
  return holders;
}

/**
 * Refuses, writing nothing, when anything holds the original volume of `volume`: the kernel's
 * page cache and a mounted file system would be corrupted by blocks written under them.
 */
export async function assertUnused(volume: string, path: string, hasFence: boolean): Promise<void> {
  const holders = await findHolders(path);
  if (holders.length === 0) return;
  throw new DrError(
    `the original volume ${volume} (${path}) is in use, so failback wrote nothing to it: ${holders.map((h) => h.what).join('; ')}`,
    {
      code: 'volume_in_use',
      subject: path,
      remedy: `${hasFence ? "run the app's fence command, or " : ''}stop those processes and unmount it (umount, losetup -d where the loop device is not the volume itself), then run failback again`,
    },
  );
}

const major = (rdev: number) => Math.floor(rdev / 256) & 0xfff;
const minor = (rdev: number) => (rdev & 0xff) | ((Math.floor(rdev / 0x100000) & 0xfff) << 8);

/** Mounts of the device (/proc/mounts, by device number) and devices stacked on it (sysfs holders). */
async function deviceHolders(rdev: number): Promise<Holder[]> {
  const out: Holder[] = [];
  const mounts = await readFile('/proc/self/mounts', 'utf8').catch(() => ''); // no procfs: none found
  for (const line of mounts.split('\n')) {
    const [source, target] = line.split(' ');
    if (!source?.startsWith('/') || target === undefined) continue;
    const s = await stat(source).catch(() => undefined); // a source that is not a path here
    if (s?.isBlockDevice() && s.rdev === rdev) {
      const mount = unescapeMount(target);
      out.push({ what: `mounted at ${mount}`, mount });
    }
  }
  out.push(...(await otherNamespaceMounts(rdev)));
  const sys = `/sys/dev/block/${major(rdev)}:${minor(rdev)}/holders`;
  for (const name of await readdir(sys).catch(() => [] as string[])) {
    out.push({
      what: `held by /dev/${name} (device mapper, RAID or similar)`,
      device: `/dev/${name}`,
    });
  }
  return out;
}

/**
 * Mounts of the device in other mount namespaces (/proc/PID/mountinfo, one process per
 * namespace): a namespace made while the device was mounted keeps its own copy of that mount,
 * which holds the device after it is unmounted here.
 */
async function otherNamespaceMounts(rdev: number): Promise<Holder[]> {
  const out: Holder[] = [];
  const self = await readlink('/proc/self/ns/mnt').catch(() => undefined); // no procfs: none found
  if (self === undefined) return out;
  const seen = new Set([self]);
  const id = `${major(rdev)}:${minor(rdev)}`;
  const pids = (await readdir('/proc').catch(() => [] as string[])).filter((e) => /^\d+$/.test(e));
  for (const p of pids) {
    const ns = await readlink(`/proc/${p}/ns/mnt`).catch(() => undefined); // exited, or not ours to read
    if (ns === undefined || seen.has(ns)) continue;
    seen.add(ns);
    const info = await readFile(`/proc/${p}/mountinfo`, 'utf8').catch(() => ''); // exited meanwhile
    for (const line of info.split('\n')) {
      const f = line.split(' ');
      if (f[2] !== id || f[4] === undefined) continue;
      const mount = unescapeMount(f[4]);
      const command = (await readFile(`/proc/${p}/comm`, 'utf8').catch(() => '?')).trim(); // exited: unnamed
      out.push({
        what: `mounted at ${mount} in another mount namespace, that of process ${p} (${command})`,
        pid: Number(p),
        command,
        mount,
      });
    }
  }
  return out;
}

/** /proc/mounts writes space, tab, newline and backslash as octal escapes. */
function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

/** Processes with `path` open (by name, or for a block device by device number), this one aside. */
async function processesHolding(path: string, rdev?: number): Promise<Holder[]> {
  const out: Holder[] = [];
  const pids = (await readdir('/proc').catch(() => [] as string[])).filter((e) => /^\d+$/.test(e));
  for (const p of pids) {
    const pid = Number(p);
    if (pid === process.pid) continue;
    const fds = await readdir(`/proc/${p}/fd`).catch(() => [] as string[]); // exited, or not ours to read
    let holds = false;
    for (const fd of fds) {
      const target = await readlink(`/proc/${p}/fd/${fd}`).catch(() => undefined); // closed meanwhile
      if (target === path) holds = true;
      else if (rdev !== undefined && target?.startsWith('/dev/')) {
        const s = await stat(target).catch(() => undefined); // gone meanwhile
        holds = s?.isBlockDevice() === true && s.rdev === rdev;
      }
      if (holds) break;
    }
    if (!holds) continue;
    const command = (await readFile(`/proc/${p}/comm`, 'utf8').catch(() => '?')).trim(); // exited: unnamed
    out.push({ what: `process ${pid} (${command}) has it open`, pid, command });
  }
  return out;
}

/** Loop devices whose backing file is `file` (sysfs: /sys/block/loopN/loop/backing_file). */
async function loopsBackedBy(file: string): Promise<string[]> {
  const out: string[] = [];
  for (const name of await readdir('/sys/block').catch(() => [] as string[])) {
    if (!name.startsWith('loop')) continue;
    const backing = await readFile(`/sys/block/${name}/loop/backing_file`, 'utf8').catch(
      () => undefined, // not attached
    );
    if (backing?.trim() === file) out.push(`/dev/${name}`);
  }
  return out;
}
