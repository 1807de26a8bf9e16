/**
 * The thaw watchdog: a process of its own that thaws what an agent froze,
 * whatever becomes of the agent. `Quiescer.freeze()` starts it (detached, in
 * its own process group) before freezing anything.
 *
 * Protocol on standard input, one line each:
 * - first, the plan as JSON: `{"mounts":[…],"thawCmd":"…","timeoutMs":2000}`
 *   (on stdin, not argv: the thaw hook may carry credentials, and argv is
 *   readable by every user in /proc); it answers `ready` on standard output;
 * - `thaw`: thaw now, then exit;
 * - `done`: the agent has thawed; disarm and wait for the next plan (one
 *   watchdog serves every cut of an agent: no process start per cut).
 * While armed it thaws and exits when standard input closes (the agent died:
 * the pipe's write end went away, SIGKILL included), when `timeoutMs` has
 * passed since it read the plan, and on SIGTERM, SIGINT or SIGHUP. Disarmed,
 * it just exits on those.
 * Exit status 0 means everything thawed (or `done`); 1 means a thaw step failed.
 * It logs JSON lines to standard error (the agent points that at a file or nowhere).
 */
import { createInterface } from 'node:readline';
import { type ThawPlan, thawAll } from './thaw-all.js';

function log(level: number, msg: string, fields: Record<string, unknown> = {}): void {
  const line = { level, time: Date.now(), pid: process.pid, name: 'thaw-watchdog', ...fields, msg };
  process.stderr.write(`${JSON.stringify(line)}\n`);
}

function parsePlan(line: string): ThawPlan | undefined {
  try {
    const p = JSON.parse(line) as Partial<ThawPlan>;
    const mountsOk = Array.isArray(p.mounts) && p.mounts.every((m) => typeof m === 'string');
    if (!mountsOk || typeof p.timeoutMs !== 'number' || !(p.timeoutMs > 0)) return undefined;
    if (p.thawCmd !== undefined && typeof p.thawCmd !== 'string') return undefined;
    return { mounts: p.mounts as string[], thawCmd: p.thawCmd, timeoutMs: p.timeoutMs };
  } catch {
    return undefined; // not JSON: reported by the caller as a bad plan
  }
}

let plan: ThawPlan | undefined;
let finishing = false;
let deadline: NodeJS.Timeout | undefined;

async function thawAndExit(reason: string): Promise<void> {
  if (finishing) return;
  finishing = true;
  clearTimeout(deadline);
  if (!plan) {
    log(30, 'exiting before any plan: nothing was frozen', { reason });
    process.exit(0);
  }
  const { thawed, errors } = await thawAll(plan);
  if (errors.length > 0) log(50, 'thaw failed', { reason, thawed, errors });
  else log(30, 'thawed', { reason, thawed });
  process.exit(errors.length > 0 ? 1 : 0);
}

// The agent stops reading after `ready`; a write after it died must not kill us before the thaw.
process.stdout.on('error', () => undefined);
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
  process.on(sig, () => void thawAndExit(sig));
}

const lines = createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY });
lines.on('line', (line) => {
  if (!plan) {
    plan = parsePlan(line);
    if (!plan) {
      log(50, 'the first line is not a thaw plan; exiting without thawing');
      process.exit(2);
    }
    const { timeoutMs } = plan;
    deadline = setTimeout(() => void thawAndExit(`deadline of ${timeoutMs} ms passed`), timeoutMs);
    process.stdout.write('ready\n');
    return;
  }
  const word = line.trim();
  if (word === 'thaw') void thawAndExit('the agent asked');
  else if (word === 'done' && !finishing) {
    clearTimeout(deadline);
    plan = undefined; // disarmed: the next line is the next cut's plan
  }
});
lines.on('close', () => void thawAndExit('standard input closed: the agent is gone'));
