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
  /** The gateway session of an agent (app locks), or of a dead predecessor until it has its own. */
  sessionId?: string;
  /**
   * Agents of this app on this machine that died before this one (app locks):
   * one of them may hold the gateway's lease under a session it never wrote down.
   */
  deadPids?: number[];
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

  /** `body` may depend on what a dead holder left, so what it hands on is written in the same write. */
  static async acquire(
    path: string,
    body:
      | Omit<LockBody, 'pid' | 'host'>
      | ((previous: LockBody | undefined) => Omit<LockBody, 'pid' | 'host'>),
    conflict: (holder: LockBody) => DrError,
  ): Promise<PidLock> {
    await mkdir(dirname(path), { recursive: true });
    const make = (previous: LockBody | undefined) =>
      JSON.stringify({
        pid: process.pid,
        host: hostname(),
        ...(typeof body === 'function' ? body(previous) : body),
      });
    try {
      await writeFile(path, make(undefined), { flag: 'wx' });
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
    await writeFile(path, make(holder));
    return new PidLock(path, holder);
  }

  async rewrite(body: Omit<LockBody, 'pid' | 'host'>): Promise<void> {
    await writeFile(this.path, JSON.stringify({ pid: process.pid, host: hostname(), ...body }));
  }

  async release(): Promise<void> {
    await rm(this.path, { force: true });
  }
}

/** How many dead predecessors a lock remembers. */
const MAX_DEAD = 16;

/**
 * One agent per app per machine. The gateway's lease stops a second agent on
 * another machine; this lock stops one here at once, and tells a restarted
 * agent which session its dead predecessor held so it may take it over.
 *
 * A predecessor may have died after the gateway gave it a session but before
 * it wrote the session down, or before it opened one at all (agents killed
 * again and again): so the lock also hands on the pids of every dead
 * predecessor since the last recorded session, and the session recorded
 * before them, until this agent records its own.
 */
export class AgentLock {
  private constructor(private readonly lock: PidLock) {}

  /** Session of a dead predecessor on this machine, if any. */
  get previousSession(): string | undefined {
    return this.lock.previous?.sessionId;
  }

  /** Pids of dead predecessors on this machine whose session may still hold the gateway's lease. */
  get deadPids(): number[] {
    const p = this.lock.previous;
    return p ? [...(p.deadPids ?? []), p.pid].slice(-MAX_DEAD) : [];
  }

  static async acquire(dir: string, app: string): Promise<AgentLock> {
    const lock = await PidLock.acquire(
      join(dir, 'agent.lock'),
      (previous) =>
        previous
          ? {
              ...(previous.sessionId ? { sessionId: previous.sessionId } : {}),
              deadPids: [...(previous.deadPids ?? []), previous.pid].slice(-MAX_DEAD),
            }
          : {},
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

  /** Our own session: from now on a successor takes over this one, and no dead predecessor's. */
  async recordSession(sessionId: string): Promise<void> {
    await this.lock.rewrite({ sessionId });
  }

  async release(): Promise<void> {
    await this.lock.release();
  }
}
