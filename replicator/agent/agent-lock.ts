// One agent per app per machine: the agent's pid lock, which hands on a dead predecessor's session.
import { join } from 'node:path';
import { DrError } from '../../core/errors.js';
import { PidLock } from '../../core/pid-lock.js';

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
    const lock = await PidLock.acquire(join(dir, 'agent.lock'), {
      body: (previous) =>
        previous
          ? {
              ...(previous.sessionId ? { sessionId: previous.sessionId } : {}),
              deadPids: [...(previous.deadPids ?? []), previous.pid].slice(-MAX_DEAD),
            }
          : {},
      conflict: (holder) =>
        new DrError(
          `another agent (pid ${holder.pid}) is already replicating app ${app} on this machine`,
          {
            code: 'agent_conflict',
            subject: app,
            remedy: `stop it first (kill ${holder.pid}); one agent per app`,
          },
        ),
    });
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
