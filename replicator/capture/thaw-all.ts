import { spawn } from 'node:child_process';

/**
 * The commands of a freeze and its thaw, shared by the agent (`Quiescer`) and
 * the thaw watchdog; it imports nothing but Node so the watchdog starts fast.
 */

export interface CommandResult {
  /** Exit code; null when the command was killed, timed out or did not start. */
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  /** Why it did not start (ENOENT …), when it did not. */
  spawnError?: string;
  /** First non-empty line of its standard error. */
  stderr: string;
  /**
   * Settles when the process has really gone. After a timeout it may still be
   * inside the kernel (a freeze in progress), where even SIGKILL waits.
   */
  exited: Promise<void>;
}

/** A thaw step is given at least this long: cutting a thaw short leaves the app frozen. */
export const THAW_STEP_MS = 10_000;

/**
 * Runs `file args` in its own process group, bounded by `timeoutMs`: on
 * timeout the whole group is killed and the result returns at once, without
 * waiting for a process stuck in the kernel.
 */
export function runCommand(
  file: string,
  args: string[],
  timeoutMs: number,
  env: NodeJS.ProcessEnv = process.env,
): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = spawn(file, args, { detached: true, stdio: ['ignore', 'ignore', 'pipe'], env });
    let stderr = '';
    let settled = false;
    let markExited: () => void = () => undefined;
    const exited = new Promise<void>((r) => {
      markExited = r;
    });
    const settle = (r: Omit<CommandResult, 'stderr' | 'exited'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const line = stderr.split('\n').find((l) => l.trim() !== '') ?? '';
      resolve({ ...r, stderr: line.trim().slice(0, 300), exited });
    };
    const timer = setTimeout(() => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // ESRCH: the group ended between the timer and the kill; nothing is left to stop
      }
      settle({ code: null, signal: null, timedOut: true });
    }, timeoutMs);
    let stderrClosed = false;
    child.stderr?.on('data', (c: Buffer) => {
      if (stderr.length < 4096) stderr += c.toString();
    });
    child.stderr?.once('close', () => {
      stderrClosed = true;
    });
    child.on('error', (err) => {
      markExited();
      settle({ code: null, signal: null, timedOut: false, spawnError: err.message });
    });
    child.on('exit', (code, signal) => {
      markExited();
      if (stderrClosed) return settle({ code, signal, timedOut: false });
      // A background grandchild may hold standard error open: read what came, then settle.
      const late = setTimeout(() => settle({ code, signal, timedOut: false }), 50);
      child.stderr?.once('close', () => {
        clearTimeout(late);
        settle({ code, signal, timedOut: false });
      });
    });
  });
}

export function succeeded(r: CommandResult): boolean {
  return r.code === 0 && !r.timedOut;
}

/** How a command failed, for logs and errors: `exited 3: <first stderr line>`. */
export function describeFailure(r: CommandResult, timeoutMs: number): string {
  const how = r.timedOut
    ? `did not finish within ${Math.round(timeoutMs)} ms`
    : r.spawnError !== undefined
      ? `could not start (${r.spawnError})`
      : r.signal !== null
        ? `was killed by ${r.signal}`
        : `exited ${r.code}`;
  return r.stderr ? `${how}: ${r.stderr}` : how;
}

/** Runs a hook command with `/bin/sh -c`. */
export function runHook(command: string, timeoutMs: number): Promise<CommandResult> {
  return runCommand('/bin/sh', ['-c', command], timeoutMs);
}

/** `fsfreeze -f MOUNT` or `fsfreeze -u MOUNT`, with messages in English to recognise them. */
export function fsfreeze(
  op: '-f' | '-u',
  mount: string,
  timeoutMs: number,
): Promise<CommandResult> {
  return runCommand('fsfreeze', [op, mount], timeoutMs, { ...process.env, LC_ALL: 'C' });
}

/** `fsfreeze -u` on a file system that is not frozen fails with EINVAL: already thawed. */
export function wasNotFrozen(r: CommandResult): boolean {
  return r.code !== 0 && !r.timedOut && /Invalid argument/.test(r.stderr);
}

export interface ThawPlan {
  /** Mount points to unfreeze, in the order they were frozen (thawed in reverse). */
  mounts: readonly string[];
  /** The app's thaw hook, run after every mount is unfrozen. */
  thawCmd?: string | undefined;
  timeoutMs: number;
}

export interface ThawOutcome {
  /** Mount points that were frozen and are now thawed. */
  thawed: string[];
  /** One line per failed step; empty when everything thawed. */
  errors: string[];
}

/** Unfreezes each mount (a mount already thawed is fine), then runs the thaw hook. Never throws. */
export async function thawAll({ mounts, thawCmd, timeoutMs }: ThawPlan): Promise<ThawOutcome> {
  const stepMs = Math.max(timeoutMs, THAW_STEP_MS);
  const out: ThawOutcome = { thawed: [], errors: [] };
  for (const mount of [...mounts].reverse()) {
    const r = await fsfreeze('-u', mount, stepMs);
    if (succeeded(r)) out.thawed.push(mount);
    else if (!wasNotFrozen(r))
      out.errors.push(`fsfreeze -u ${mount} ${describeFailure(r, stepMs)}`);
  }
  if (thawCmd !== undefined) {
    const r = await runHook(thawCmd, stepMs);
    if (!succeeded(r)) out.errors.push(`thaw hook (thawCmd) ${describeFailure(r, stepMs)}`);
  }
  return out;
}
