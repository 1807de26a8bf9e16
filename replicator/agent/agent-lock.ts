import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { DrError, systemCode } from '../../core/errors.js';

/** What a lock file holds: who has it, and what it is for. */
export interface LockBody {
  pid: number;
  host: string;
  /** The app an agent protects (device locks). */
  app?: string;
  /** The gateway session of an agent (app locks). */
  sessionId?: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return systemCode(err) === 'EPERM';
  }
}

/**
 * A lock file held by a live process: taken with O_EXCL, taken over when its
 * holder is dead (the body of the dead holder is handed back), refused with
 * `conflict(holder)` while the holder lives.
 */
export class PidLock {
  private constructor(
    readonly path: string,
    /** The body a dead holder left, if the lock was taken over. */
    readonly previous: LockBody | undefined,
  ) {}

  static async acquire(
    path: string,
    body: Omit<LockBody, 'pid' | 'host'>,
    conflict: (holder: LockBody) => DrError,
  ): Promise<PidLock> {
    await mkdir(dirname(path), { recursive: true });
    const mine = JSON.stringify({ pid: process.pid, host: hostname(), ...body });
    try {
      await writeFile(path, mine, { flag: 'wx' });
      return new PidLock(path, undefined);
    } catch (err) {
      if (systemCode(err) !== 'EEXIST') throw err;
    }
    let holder: LockBody | undefined;
    try {
      holder = JSON.parse(await readFile(path, 'utf8')) as LockBody;
    } catch {
      // Unreadable or torn lock: its writer died mid-write, so nobody holds it.
    }
    if (holder && holder.pid !== process.pid && alive(holder.pid)) throw conflict(holder);
    await writeFile(path, mine);
    return new PidLock(path, holder);
  }

  async rewrite(body: Omit<LockBody, 'pid' | 'host'>): Promise<void> {
    await writeFile(this.path, JSON.stringify({ pid: process.pid, host: hostname(), ...body }));
  }

  async release(): Promise<void> {
    await rm(this.path, { force: true });
  }
}

/**
 * One agent per app per machine. The gateway's lease stops a second agent on
 * another machine; this lock stops one here at once, and tells a restarted
 * agent which session its dead predecessor held so it may take it over.
 */
export class AgentLock {
  private constructor(private readonly lock: PidLock) {}

  /** Session of a dead predecessor on this machine, if any. */
  get previousSession(): string | undefined {
    return this.lock.previous?.sessionId;
  }

  static async acquire(dir: string, app: string): Promise<AgentLock> {
    const lock = await PidLock.acquire(
      join(dir, 'agent.lock'),
      {},
      (holder) =>
        new DrError(
          `another agent (pid ${holder.pid}) is already replicating app ${app} on this machine`,
          {
            code: 'agent_conflict',
            subject: app,
            remedy: `stop it first (kill ${holder.pid}); one agent per app`,
          },
        ),
    );
    return new AgentLock(lock);
  }

  async recordSession(sessionId: string): Promise<void> {
    await this.lock.rewrite({ sessionId });
  }

  async release(): Promise<void> {
    await this.lock.release();
  }
}
