// A lock file held by a live process: taken with O_EXCL, taken over from a dead holder.
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DrError } from './errors.js';
import { systemCode } from './errors.js';
import { pidAlive } from './pid-alive.js';

/** What a lock file holds: who has it, and what the user of the lock wrote with it. */
export interface LockBody {
  pid: number;
  host: string;
  /** The app an agent protects (device locks). */
  app?: string;
  /** The gateway session of an agent (app locks), or of a dead predecessor until it has its own. */
  sessionId?: string;
  /**
   * Agents of this app on this machine that died before this one (app locks):
   * one of them may hold the gateway's lease under a session it never wrote down.
   */
  deadPids?: number[];
}

export type LockFields = Omit<LockBody, 'pid' | 'host'>;

export interface PidLockOptions {
  /** What to write beside pid and host; may depend on what a dead holder left. */
  body?: LockFields | ((previous: LockBody | undefined) => LockFields);
  /** The error while a live process holds it (after `waitMs`). */
  conflict: (holder: LockBody) => DrError;
  /** How long to wait for a live holder to let go, looking every 100 ms (0: refuse at once). */
  waitMs?: number;
  /**
   * A lock naming this very process: a predecessor that had the same pid (pid 1 in a container),
   * taken over (the default); or another user in this process, waited for like any live holder.
   */
  sameProcess?: 'takeOver' | 'wait';
  /** The lock file's mode, and its folder's (made when missing). */
  mode?: { file: number; dir: number };
}

/**
 * A lock file held by a live process: taken with O_EXCL, taken over when its holder is dead (the
 * body it left is handed back as `previous`), and refused with `conflict(holder)` while the holder
 * lives. A torn or unreadable file has no holder: its writer died mid-write.
 */
export class PidLock {
  private constructor(
    readonly path: string,
    /** The body a dead holder left, if the lock was taken over. */
    readonly previous: LockBody | undefined,
  ) {}

  static async acquire(path: string, o: PidLockOptions): Promise<PidLock> {
    const mode = o.mode ?? { file: 0o644, dir: 0o755 };
    await mkdir(dirname(path), { recursive: true, mode: mode.dir });
    const make = (previous: LockBody | undefined) =>
      JSON.stringify({
        pid: process.pid,
        host: hostname(),
        ...(typeof o.body === 'function' ? o.body(previous) : (o.body ?? {})),
      });
    const until = Date.now() + (o.waitMs ?? 0);
    for (;;) {
      try {
        await writeFile(path, make(undefined), { flag: 'wx', mode: mode.file });
        return new PidLock(path, undefined);
      } catch (err) {
        if (systemCode(err) !== 'EEXIST') throw err;
      }
      const holder = await readHolder(path);
      const ours = holder?.pid === process.pid && o.sameProcess !== 'wait';
      if (!holder || ours || !pidAlive(holder.pid)) {
        await writeFile(path, make(holder), { mode: mode.file });
        return new PidLock(path, holder);
      }
      if (Date.now() >= until) throw o.conflict(holder);
      await sleep(100);
    }
  }

  async rewrite(body: LockFields): Promise<void> {
    await writeFile(this.path, JSON.stringify({ pid: process.pid, host: hostname(), ...body }));
  }

  async release(): Promise<void> {
    await rm(this.path, { force: true });
  }
}

/** Who holds the lock at `path`: its JSON body, or a bare pid (as older cache locks wrote). */
async function readHolder(path: string): Promise<LockBody | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (systemCode(err) === 'ENOENT') return undefined; // released meanwhile: nobody holds it
    throw err;
  }
  try {
    const body = JSON.parse(text) as unknown;
    if (typeof body === 'number') return { pid: body, host: hostname() };
    if (body && typeof body === 'object' && typeof (body as LockBody).pid === 'number')
      return body as LockBody;
  } catch {
    // Unreadable or torn lock: its writer died mid-write, so nobody holds it.
  }
  return undefined;
}
