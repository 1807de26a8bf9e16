import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { DrError, errorMessage, systemCode } from '../../core/errors.js';
import { pidAlive } from '../../core/pid-alive.js';
import { formatDuration } from '../../core/units.js';

/** One process the supervisor runs. */
export interface ChildSpec {
  /** Short name shown before its lines: `gateway`, `agent demo-shop`. */
  name: string;
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  /** Appends its standard output and error here. */
  logFile: string;
  /** A line (stdout or stderr) that says it is ready; absent: ready once spawned. */
  ready?: RegExp;
  /** How long it may take to get ready (default 30 s). */
  readyTimeoutMs?: number;
  /**
   * Runs in this terminal (the chat console): same process group so it may read the terminal,
   * standard streams inherited, no log, never restarted (leaving it leaves the rest running).
   */
  interactive?: boolean;
  /** Keep its output in the log only (redis-server's start banner). */
  quiet?: boolean;
  /** Output that means it stopped for good and must not be restarted (an agent whose app failed over). */
  final?: RegExp;
}

export interface SupervisorOptions {
  /** Where the supervisor's own lines and the children's interesting lines go. */
  out: (line: string) => void;
  /** Restarts allowed per child within `windowMs` before everything stops (default 5). */
  maxRestarts?: number;
  windowMs?: number;
  /** First restart delay, doubled each time up to 30 s (default 1 s). */
  backoffMs?: number;
  /**
   * How long a child has to stop after SIGTERM before SIGKILL (default 15 s: longer than the
   * 10 s DR_STOP_TIMEOUT in which every `dr` part stops by itself, abandoning work safely).
   */
  stopGraceMs?: number;
  /** Called when a child was restarted (its pid changed). */
  onRestart?: () => void;
  /** Called once when a child keeps crashing: the caller stops everything. */
  onGiveUp: (reason: string) => void;
}

interface Running {
  spec: ChildSpec;
  child: ChildProcess;
  exited: Promise<void>;
  restarts: number[];
  log: WriteStream;
  /** The end of its recent output. */
  tail: string;
  /** Until its first start is ready: a death then fails `start` instead of restarting it. */
  starting: boolean;
}

const MAX_BACKOFF_MS = 30_000;

/**
 * Runs the processes of `dr up`: each in its own process group (a terminal's Ctrl-C reaches only
 * `dr up`, which stops them in order), restarted with backoff when one dies, all stopped in the
 * reverse order of their start by `stopAll`, SIGKILL for any that outstays the grace period.
 */
export class Supervisor {
  private readonly running: Running[] = [];
  private stopping = false;
  private readonly maxRestarts: number;
  private readonly windowMs: number;
  private readonly backoffMs: number;
  private readonly stopGraceMs: number;
  private readonly timers = new Set<NodeJS.Timeout>();
  /** Aborted by `cancelStarts`: a start still waiting for its child to be ready gives up. */
  private readonly starts = new AbortController();

  constructor(private readonly o: SupervisorOptions) {
    this.maxRestarts = o.maxRestarts ?? 5;
    this.windowMs = o.windowMs ?? 60_000;
    this.backoffMs = o.backoffMs ?? 1000;
    this.stopGraceMs = o.stopGraceMs ?? 15_000;
  }

  /** The children now running, in start order. */
  children(): { name: string; pid: number; log: string }[] {
    return this.running
      .filter((r) => r.child.pid !== undefined)
      .map((r) => ({ name: r.spec.name, pid: r.child.pid as number, log: r.spec.logFile }));
  }

  /** Starts a child and waits until it is ready; rejects (the child stopped) if it dies or hangs first. */
  async start(spec: ChildSpec): Promise<void> {
    const r: Running = {
      spec,
      restarts: [],
      tail: '',
      starting: true,
      log: createWriteStream(spec.logFile, { flags: 'a', mode: 0o600 }),
      ...this.spawn(spec),
    };
    r.log.on('error', (err) => this.o.out(`up: cannot write ${spec.logFile}: ${err.message}`));
    this.running.push(r);
    this.watch(r);
    await this.waitReady(r);
    r.starting = false;
  }

  private spawn(spec: ChildSpec): { child: ChildProcess; exited: Promise<void> } {
    const child = spawn(spec.command, spec.args, {
      env: spec.env,
      stdio: spec.interactive ? 'inherit' : ['ignore', 'pipe', 'pipe'],
      detached: !spec.interactive,
    });
    const exited = new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', () => resolve());
    });
    return { child, exited };
  }

  /** Copies output to the log and the terminal, and handles an exit nobody asked for. */
  private watch(r: Running): void {
    const { child, spec } = r;
    child.once('error', (err) =>
      this.o.out(`up: ${spec.name} could not be started: ${err.message}`),
    );
    for (const stream of [child.stdout, child.stderr]) {
      let partial = '';
      stream?.on('data', (chunk: Buffer) => {
        r.log.write(chunk);
        r.tail = (r.tail + chunk.toString()).slice(-4096);
        partial += chunk.toString();
        const lines = partial.split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) {
          const shown = spec.quiet ? undefined : terminalLine(line);
          if (shown !== undefined) this.o.out(`${spec.name} | ${shown}`);
        }
      });
    }
    child.once('exit', (code, signal) => {
      if (this.stopping || r.starting || r.child !== child) return;
      if (spec.interactive) {
        this.o.out(`up: the ${spec.name} ended; everything else keeps running (Ctrl-C stops it)`);
        return;
      }
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      const final = spec.final && r.tail.split('\n').findLast((l) => spec.final?.test(l));
      if (final) {
        this.o.out(`up: ${spec.name} ${how} and is not restarted: ${final.replace(/^dr: /, '')}`);
        return;
      }
      const now = Date.now();
      r.restarts = r.restarts.filter((t) => now - t < this.windowMs);
      if (r.restarts.length >= this.maxRestarts) {
        const reason = `${spec.name} ${how} and has been restarted ${r.restarts.length} time(s) in the last ${Math.round(this.windowMs / 1000)} s (limit ${this.maxRestarts}); stopping everything (its log: ${spec.logFile})`;
        this.o.out(`up: ${reason}`);
        this.o.onGiveUp(reason);
        return;
      }
      const delay = Math.min(MAX_BACKOFF_MS, this.backoffMs * 2 ** r.restarts.length);
      r.restarts.push(now);
      this.o.out(
        `up: ${spec.name} ${how}; restarting it in ${formatDuration(delay)} (restart ${r.restarts.length} of ${this.maxRestarts} allowed per ${Math.round(this.windowMs / 1000)} s; its log: ${spec.logFile})`,
      );
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        if (this.stopping) return;
        Object.assign(r, this.spawn(spec), { tail: '' });
        this.watch(r);
        this.waitReady(r).then(
          () => {
            this.o.out(`up: ${spec.name} is back (pid ${r.child.pid})`);
            this.o.onRestart?.();
          },
          (err: unknown) => this.o.out(`up: ${errorMessage(err)}`), // its exit handler restarts it again
        );
      }, delay);
      this.timers.add(timer);
    });
  }

  /** Makes every pending and later `start` reject at once (a signal arrived while starting). */
  cancelStarts(): void {
    this.starts.abort();
  }

  private async waitReady(r: Running): Promise<void> {
    const { spec, child } = r;
    const timeoutMs = spec.readyTimeoutMs ?? 30_000;
    await new Promise<void>((resolve, reject) => {
      const failed = (why: string) =>
        reject(
          new DrError(`${spec.name} ${why}`, {
            code: 'child_failed',
            subject: spec.name,
            remedy: `read its log, ${spec.logFile}`,
          }),
        );
      const onExit = (code: number | null, signal: string | null) => {
        cleanup();
        // Its last output may arrive just after the exit: give it a moment to be in the message.
        setTimeout(
          () =>
            failed(
              `stopped before it was ready (${signal ? `killed by ${signal}` : `exit code ${code}`})${lastLines(r.tail)}`,
            ),
          100,
        );
      };
      const onError = (err: Error) => {
        cleanup();
        failed(`could not be started: ${err.message}`);
      };
      let seen = '';
      const onData = (c: Buffer) => {
        seen = (seen + c.toString()).slice(-8192);
        if (spec.ready?.test(seen)) {
          cleanup();
          resolve();
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        failed(`was not ready within ${Math.round(timeoutMs / 1000)} s`);
      }, timeoutMs);
      const onCancel = () => {
        cleanup();
        failed('was still starting when everything was asked to stop');
      };
      const cleanup = () => {
        clearTimeout(timer);
        this.starts.signal.removeEventListener('abort', onCancel);
        child.off('exit', onExit);
        child.off('error', onError);
        child.stdout?.off('data', onData);
        child.stderr?.off('data', onData);
      };
      child.once('exit', onExit);
      child.once('error', onError);
      if (this.starts.signal.aborted) return onCancel();
      this.starts.signal.addEventListener('abort', onCancel);
      if (spec.ready) {
        child.stdout?.on('data', onData);
        child.stderr?.on('data', onData);
      } else if (child.pid !== undefined) {
        cleanup();
        resolve();
      } else {
        child.once('spawn', () => {
          cleanup();
          resolve();
        });
      }
    });
  }

  /**
   * Stops every child, last started first: SIGTERM to the child, SIGKILL to its whole process
   * group after the grace period (also when `now`). Resolves once every one has exited.
   */
  async stopAll(now = false): Promise<void> {
    this.stopping = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const r of [...this.running].reverse()) {
      await this.stopOne(r, now);
    }
    for (const r of this.running) r.log.end();
    this.running.length = 0;
  }

  private async stopOne(r: Running, now: boolean): Promise<void> {
    const { child } = r;
    const pid = child.pid;
    if (pid === undefined) return;
    if (child.exitCode === null && child.signalCode === null) {
      signal(pid, now ? 'SIGKILL' : 'SIGTERM');
      const grace = new AbortController();
      const timer = sleep(now ? 2000 : this.stopGraceMs, 'late' as const, {
        signal: grace.signal,
      }).catch(() => 'done' as const); // aborted: it exited in time
      const outcome = await Promise.race([r.exited.then(() => 'done' as const), timer]);
      grace.abort();
      if (outcome === 'late') {
        this.o.out(`up: ${r.spec.name} (pid ${pid}) did not stop in time; killing it`);
        signal(pid, 'SIGKILL');
        await r.exited;
      }
    }
    // Anything it started in its group and left behind goes with it (an interactive child shares ours).
    if (!r.spec.interactive) signal(-pid, 'SIGKILL');
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    if (systemCode(err) !== 'ESRCH') throw err; // ESRCH: already gone
  }
}

/** Sends SIGTERM, then SIGKILL after `graceMs`, to a process this supervisor did not start. */
export async function stopStray(pid: number, graceMs = 5000): Promise<void> {
  signal(pid, 'SIGTERM');
  const until = Date.now() + graceMs;
  while (pidAlive(pid) && Date.now() < until) await sleep(50);
  if (pidAlive(pid)) signal(pid, 'SIGKILL');
  signal(-pid, 'SIGKILL');
}

const LEVELS: Record<number, string> = { 40: 'warn', 50: 'error', 60: 'fatal' };

/**
 * What of a child's line the terminal shows: plain lines as they are, JSON log lines (pino) at
 * warn and above as `level message`, and the rest (info, debug) only in the log file.
 */
function terminalLine(line: string): string | undefined {
  if (line.trim() === '') return undefined;
  if (!line.startsWith('{')) return line;
  try {
    const j = JSON.parse(line) as { level?: number; msg?: string; err?: unknown };
    const level = typeof j.level === 'number' ? j.level : 30;
    if (level < 40) return undefined;
    const err =
      typeof j.err === 'string' ? j.err : (j.err as { message?: string } | undefined)?.message;
    return `${LEVELS[level] ?? 'warn'}: ${j.msg ?? ''}${err ? ` (${err})` : ''}`;
  } catch {
    return line; // not JSON after all: show it as it is
  }
}

/** The last lines a child wrote, for an error that says why it would not start. */
function lastLines(tail: string): string {
  const text = tail.trimEnd().split('\n').slice(-5).join('\n  ');
  return text ? `; its last lines:\n  ${text}` : '';
}
