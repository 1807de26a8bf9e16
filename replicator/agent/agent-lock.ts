import { readFile, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { DrError, systemCode } from '../../core/errors.js';

interface LockBody {
  pid: number;
  host: string;
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
 * One agent per app per machine. The gateway's lease stops a second agent on
 * another machine; this lock stops one here at once, and tells a restarted
 * agent which session its dead predecessor held so it may take it over.
 */
export class AgentLock {
  private constructor(
    private readonly path: string,
    /** Session of a dead predecessor on this machine, if any. */
    readonly previousSession: string | undefined,
  ) {}

  static async acquire(dir: string, app: string): Promise<AgentLock> {
    const path = join(dir, 'agent.lock');
    try {
      await writeFile(path, JSON.stringify({ pid: process.pid, host: hostname() }), { flag: 'wx' });
      return new AgentLock(path, undefined);
    } catch (err) {
      if (systemCode(err) !== 'EEXIST') throw err;
    }
    let body: LockBody | undefined;
    try {
      body = JSON.parse(await readFile(path, 'utf8')) as LockBody;
    } catch {
      // Unreadable or torn lock: its writer died mid-write, so nobody holds it.
    }
    if (body && body.pid !== process.pid && alive(body.pid)) {
      throw new DrError(
        `another agent (pid ${body.pid}) is already replicating app ${app} on this machine`,
        {
          code: 'agent_conflict',
          subject: app,
          remedy: `stop it first (kill ${body.pid}); one agent per app`,
        },
      );
    }
    // The holder is dead: take over its lock and, at the gateway, its session.
    await writeFile(
      path,
      JSON.stringify({ pid: process.pid, host: hostname(), sessionId: body?.sessionId }),
    );
    return new AgentLock(path, body?.sessionId);
  }

  async recordSession(sessionId: string): Promise<void> {
    await writeFile(this.path, JSON.stringify({ pid: process.pid, host: hostname(), sessionId }));
  }

  async release(): Promise<void> {
    await rm(this.path, { force: true });
  }
}
