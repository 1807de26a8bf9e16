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

/**
 * A command started now and held before it runs: `/bin/sh` waits for one line on its standard
 * input, then execs the command. The fork of a large process (the agent: ~15 ms on a busy
 * machine) happens here, before whatever is timed later (a freeze); `run` is a pipe write and an
 * exec. Exit 125 without a "go" line (disarmed, or its parent died) runs nothing.
 */
export interface ArmedCommand {
  /** The held shell's pid (undefined when it could not start). */
  readonly pid: number | undefined;
  /** Runs it, bounded like runCommand; undefined when the held shell is gone (run it afresh). */
  run(timeoutMs: number): Promise<CommandResult | undefined>;
  /** Lets the held shell exit without running the command; idempotent, a no-op after `run`. */
  disarm(): void;
}

const HOLD = 'read -r go && [ "$go" = go ] && exec "$0" "$@"; exit 125';

export function armCommand(
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): ArmedCommand {
  const child = spawn('/bin/sh', ['-c', HOLD, file, ...args], {
    detached: true,
    stdio: ['pipe', 'ignore', 'pipe'],
    env,
  });
  type End = Pick<CommandResult, 'code' | 'signal' | 'spawnError'>;
  let stderr = '';
  let ended: End | undefined;
  let onEnd: (e: End) => void = () => undefined;
  let markExited: () => void = () => undefined;
  const exited = new Promise<void>((r) => {
    markExited = r;
  });
  const end = (e: End) => {
    markExited();
    if (ended) return;
    ended = e;
    onEnd(e);
  };
  child.stdin?.on('error', () => undefined); // EPIPE: the shell is gone, and run() says so
  child.stderr?.on('data', (c: Buffer) => {
    if (stderr.length < 4096) stderr += c.toString();
  });
  child.on('error', (err) => end({ code: null, signal: null, spawnError: err.message }));
  child.on('exit', (code, signal) => {
    if (child.stderr?.readableEnded !== false) return end({ code, signal });
    // Read what it wrote to standard error before reporting (bounded: a grandchild may hold it).
    const late = setTimeout(() => end({ code, signal }), 50);
    child.stderr.once('close', () => {
      clearTimeout(late);
      end({ code, signal });
    });
  });
  let started = false;
  return {
    pid: child.pid,
    run(timeoutMs) {
      if (started || ended || child.pid === undefined || !child.stdin?.writable) {
        return Promise.resolve(undefined);
      }
      started = true;
      const pid = child.pid;
      return new Promise((resolve) => {
        const first = () =>
          (stderr.split('\n').find((l) => l.trim() !== '') ?? '').trim().slice(0, 300);
        const timer = setTimeout(() => {
          try {
            process.kill(-pid, 'SIGKILL');
          } catch {
            // ESRCH: the group ended between the timer and the kill; nothing is left to stop
          }
          onEnd = () => undefined;
          resolve({ code: null, signal: null, timedOut: true, stderr: first(), exited });
        }, timeoutMs);
        onEnd = (e) => {
          clearTimeout(timer);
          // 125 with no signal: the shell never got to exec (it lost its input): run it afresh.
          if (e.code === 125 && e.signal === null) return resolve(undefined);
          resolve({
            code: e.code,
            signal: e.signal,
            timedOut: false,
            ...(e.spawnError !== undefined ? { spawnError: e.spawnError } : {}),
            stderr: first(),
            exited,
          });
        };
        child.stdin?.end('go\n');
      });
    },
    disarm() {
      if (started) return;
      started = true;
      child.stdin?.end();
    },
  };
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

/** `fsfreeze -u MOUNT`, forked now and run later (see ArmedCommand). */
export function armThaw(mount: string): ArmedCommand {
  return armCommand('fsfreeze', ['-u', mount], { ...process.env, LC_ALL: 'C' });
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
  /** Thaws forked before the freeze (by mount point); a mount without one is thawed afresh. */
  armed?: ReadonlyMap<string, ArmedCommand> | undefined;
}

export interface ThawOutcome {
  /** Mount points that were frozen and are now thawed. */
  thawed: string[];
  /** One line per failed step; empty when everything thawed. */
  errors: string[];
}

/** Unfreezes each mount (a mount already thawed is fine), then runs the thaw hook. Never throws. */
export async function thawAll({
  mounts,
  thawCmd,
  timeoutMs,
  armed,
}: ThawPlan): Promise<ThawOutcome> {
  const stepMs = Math.max(timeoutMs, THAW_STEP_MS);
  const out: ThawOutcome = { thawed: [], errors: [] };
  for (const mount of [...mounts].reverse()) {
    const r = (await armed?.get(mount)?.run(stepMs)) ?? (await fsfreeze('-u', mount, stepMs));
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
