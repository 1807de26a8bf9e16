/** Serves on-demand volumes as files on a FUSE file system in this process (fuse-native, an optional dependency). */
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { DrError, errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { OnDemandVolume } from './on-demand-volume.js';

const run = promisify(execFile);

/** The part of fuse-native's API used here. */
interface FuseInstance {
  mount(cb: (err: Error | null) => void): void;
  unmount(cb: (err: Error | null) => void): void;
}
interface FuseClass {
  new (mnt: string, ops: Record<string, unknown>, opts: Record<string, unknown>): FuseInstance;
  EIO: number;
  ENOENT: number;
  EPERM: number;
  EINVAL: number;
}

let loaded: { fuse?: FuseClass; why?: string } | undefined;

function loadFuse(): { fuse?: FuseClass; why?: string } {
  if (loaded) return loaded;
  try {
    const require = createRequire(import.meta.url);
    loaded = { fuse: require('fuse-native') as FuseClass };
  } catch (err) {
    loaded = {
      why: `the FUSE binding fuse-native does not load (${errorMessage(err).split('\n')[0]}); run \`npm install fuse-native\``,
    };
  }
  return loaded;
}

/**
 * Why volumes cannot be served on demand here, or undefined when they can: `/dev/fuse` present
 * and openable, `fusermount` on the PATH, the binding loaded.
 */
export async function fuseUnavailable(): Promise<string | undefined> {
  try {
    await access('/dev/fuse', constants.R_OK | constants.W_OK);
  } catch (err) {
    const code = (err as { code?: string }).code;
    return code === 'ENOENT'
      ? '/dev/fuse is absent (load the fuse module, or give the container --device /dev/fuse)'
      : `/dev/fuse cannot be opened (${code}); add the worker's user to the fuse group or run it with CAP_SYS_ADMIN`;
  }
  try {
    await run('fusermount', ['-V']);
  } catch {
    return 'fusermount is not on the PATH (install the fuse3 or fuse package)';
  }
  return loadFuse().why;
}

export interface MountedVolumes {
  /** The directory the volumes appear in, `<volume>.img` each. */
  dir: string;
  paths: Record<string, string>;
  unmount(): Promise<void>;
}

/**
 * Mounts `volumes` as `<dir>/<name>.img`: reads and writes go to each OnDemandVolume; an error
 * there (a tampered block, a gateway gone for good, a full disk) is EIO to the reader. The
 * mount lives as long as this process: never read these files synchronously from it.
 */
export async function mountVolumes(
  dir: string,
  volumes: OnDemandVolume[],
  log: Logger,
): Promise<MountedVolumes> {
  const { fuse: Fuse, why } = loadFuse();
  if (!Fuse) {
    throw new DrError(why ?? 'fuse-native is missing', {
      code: 'dependency_missing',
      subject: 'fuse-native',
      remedy: 'install fuse-native, or recover with full materialisation',
    });
  }
  const mnt = resolve(dir);
  await unmountStale(mnt);
  await mkdir(mnt, { recursive: true, mode: 0o700 });
  const byPath = new Map(volumes.map((v) => [`/${v.name}.img`, v]));
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const now = new Date();
  const stat = (mode: number, size: number) => ({
    mode,
    size,
    uid,
    gid,
    nlink: 1,
    mtime: now,
    atime: now,
    ctime: now,
  });
  const fail = (err: unknown, what: string, cb: (n: number) => void) => {
    log.error({ err: errorMessage(err) }, `on-demand volume ${what} failed`);
    cb(Fuse.EIO);
  };
  const ops = {
    readdir: (path: string, cb: (err: number, names?: string[]) => void) => {
      if (path !== '/') return cb(Fuse.ENOENT);
      cb(
        0,
        volumes.map((v) => `${v.name}.img`),
      );
    },
    getattr: (path: string, cb: (err: number, st?: unknown) => void) => {
      if (path === '/') return cb(0, stat(constants.S_IFDIR | 0o700, 4096));
      const v = byPath.get(path);
      if (!v) return cb(Fuse.ENOENT);
      cb(0, stat(constants.S_IFREG | 0o600, v.size));
    },
    open: (path: string, _flags: number, cb: (err: number, fd?: number) => void) => {
      if (!byPath.has(path)) return cb(Fuse.ENOENT);
      cb(0, 42);
    },
    release: (_path: string, _fd: number, cb: (err: number) => void) => cb(0),
    read: (
      path: string,
      _fd: number,
      buf: Buffer,
      len: number,
      pos: number,
      cb: (n: number) => void,
    ) => {
      const v = byPath.get(path);
      if (!v) return cb(Fuse.ENOENT);
      v.read(buf, len, pos).then(cb, (err: unknown) => fail(err, 'read', cb));
    },
    write: (
      path: string,
      _fd: number,
      buf: Buffer,
      len: number,
      pos: number,
      cb: (n: number) => void,
    ) => {
      const v = byPath.get(path);
      if (!v) return cb(Fuse.ENOENT);
      v.write(buf, len, pos).then(cb, (err: unknown) => fail(err, 'write', cb));
    },
    truncate: (path: string, size: number, cb: (err: number) => void) => {
      const v = byPath.get(path);
      if (!v) return cb(Fuse.ENOENT);
      cb(size === v.size ? 0 : Fuse.EPERM); // a volume keeps its size
    },
    ftruncate: (path: string, _fd: number, size: number, cb: (err: number) => void) =>
      ops.truncate(path, size, cb),
    fsync: (path: string, _fd: number, _datasync: boolean, cb: (err: number) => void) => {
      const v = byPath.get(path);
      if (!v) return cb(Fuse.ENOENT);
      v.sync().then(
        () => cb(0),
        (err: unknown) => fail(err, 'fsync', cb),
      );
    },
    flush: (_path: string, _fd: number, cb: (err: number) => void) => cb(0),
  };
  // No timeout: a read waits for its block while the volume retries the gateway (bounded there).
  const fuse = new Fuse(mnt, ops, {
    timeout: false,
    force: true,
    // The kernel drops the mount when this process ends, even by SIGKILL: no stale mount to trip over.
    autoUnmount: true,
    fsname: 'lifeboat',
  });
  await new Promise<void>((ok, ko) =>
    fuse.mount((err) =>
      err
        ? ko(
            new DrError(`cannot mount the on-demand volumes at ${mnt}: ${errorMessage(err)}`, {
              code: 'provider_failed',
              subject: mnt,
              remedy: 'check /dev/fuse and fusermount; or set recovery.instant: false',
              cause: err,
            }),
          )
        : ok(),
    ),
  );
  let mounted = true;
  return {
    dir: mnt,
    paths: Object.fromEntries(volumes.map((v) => [v.name, join(mnt, `${v.name}.img`)])),
    unmount: async () => {
      if (!mounted) return;
      mounted = false;
      await new Promise<void>((ok) =>
        fuse.unmount((err) => {
          if (err) log.warn({ err: errorMessage(err), mnt }, 'unmount failed; detaching lazily');
          ok();
        }),
      );
      await unmountStale(mnt);
    },
  };
}

/** Detaches a FUSE mount at `dir` (or under it) left by a process that ended; a no-op when none. */
export async function unmountStale(dir: string): Promise<void> {
  const root = resolve(dir);
  const mounts = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  const points = mounts
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((p): p is string => p !== undefined && (p === root || p.startsWith(`${root}/`)))
    .map((p) => p.replace(/\\040/g, ' '))
    .sort((a, b) => b.length - a.length);
  for (const p of points) {
    await run('fusermount', ['-uz', p]).catch((err: unknown) => {
      throw new DrError(`cannot detach the FUSE mount at ${p}: ${errorMessage(err)}`, {
        code: 'provider_failed',
        subject: p,
        remedy: `run \`fusermount -uz ${p}\` (as root if it was mounted by another user)`,
        cause: err,
      });
    });
  }
}
