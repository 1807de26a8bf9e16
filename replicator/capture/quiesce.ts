/** The quiesce of a consistent cut: the app's freeze hook and fsfreeze, bounded by a thaw watchdog. */
import { performance } from 'node:perf_hooks';
import { DrError } from '../../core/errors.js';
import { type Logger, silentLog } from '../../core/log.js';
import {
  type ArmedCommand,
  armThaw,
  type CommandResult,
  describeFailure,
  fsfreeze,
  runHook,
  succeeded,
  THAW_STEP_MS,
  thawAll,
} from './thaw-all.js';
import { spawnWatchdog, type Watchdog, watchdogScript } from './watchdog-client.js';

/** How long a new thaw watchdog may take to start (before anything is frozen). */
const WATCHDOG_START_MS = 30_000;

export interface QuiesceOptions {
  /** Mount points to freeze with `fsfreeze -f` (and thaw with `fsfreeze -u`). */
  fsfreeze?: string[];
  /** Shell commands of the app's own quiesce hook; freeze runs before fsfreeze, thaw after fsfreeze -u. Both or neither. */
  freezeCmd?: string;
  thawCmd?: string;
  /** Longest the volumes may stay frozen; the watchdog thaws at this deadline whatever the agent does. Default 2000 ms. */
  timeoutMs?: number;
  log?: Logger;
  /** File the thaw watchdog appends its JSON log lines to; by default they are dropped. */
  watchdogLog?: string;
}

export type CutLabel = 'app-consistent' | 'crash-consistent' | 'fuzzy';

export interface ThawResult {
  frozenMs: number;
  /** Of frozenMs, the thaw itself (fsfreeze -u and the thaw hook). */
  thawMs?: number;
  thawError?: string;
  /**
   * The deadline passed before `thaw()` was called: the watchdog thawed on
   * its own, so a cut taken inside this freeze is not consistent (label it fuzzy).
   */
  expired: boolean;
}

export interface Frozen {
  /** The label a point cut inside this freeze earns: app-consistent when the app hook ran, crash-consistent for fsfreeze alone. */
  label: CutLabel;
  /** How long the freeze hook and `fsfreeze -f` took to return (before the frozen time starts). */
  enterMs: number;
  /** Thaws (fsfreeze -u, then the thaw hook); idempotent; resolves with the time frozen in ms. Never throws: a failed thaw is logged and reported in the result. */
  thaw(): Promise<ThawResult>;
}

const bounded = <T>(p: Promise<T>, ms: number): Promise<T | undefined> =>
  new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), ms);
    void p.then((v) => {
      clearTimeout(timer);
      resolve(v);
    });
  });

/**
 * The quiesce of a consistent cut: the app's freeze hook, then `fsfreeze -f`
 * on each mount point; the thaw in reverse. Before freezing it starts a thaw
 * watchdog, a separate process that thaws at the deadline or when the agent
 * dies, so nothing stays frozen whatever happens to the agent. Only a
 * supervisor that kills the agent's whole cgroup (systemd's default
 * KillMode) also ends the watchdog; `recover()` at the next start covers that.
 */
export class Quiescer {
  private readonly mounts: readonly string[];
  private readonly freezeCmd: string | undefined;
  private readonly thawCmd: string | undefined;
  private readonly timeoutMs: number;
  private readonly log: Logger;
  private watchdog: Watchdog | undefined;
  private readonly watchdogLog: string | undefined;

  constructor(o: QuiesceOptions) {
    if ((o.freezeCmd === undefined) !== (o.thawCmd === undefined)) {
      throw new DrError(`the quiesce hook has a ${o.freezeCmd ? 'freeze' : 'thaw'} command only`, {
        code: 'config_invalid',
        subject: o.freezeCmd ? 'thawCmd' : 'freezeCmd',
        remedy: 'give both a freeze and a thaw command, or neither',
      });
    }
    const timeoutMs = o.timeoutMs ?? 2000;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      throw new DrError(`quiesce timeout ${timeoutMs} ms is not a positive duration`, {
        code: 'config_invalid',
        subject: 'timeoutMs',
        remedy: 'set the quiesce timeout to a duration such as 2s',
      });
    }
    this.mounts = [...(o.fsfreeze ?? [])];
    this.freezeCmd = o.freezeCmd;
    this.thawCmd = o.thawCmd;
    this.timeoutMs = timeoutMs;
    this.log = o.log ?? silentLog;
    this.watchdogLog = o.watchdogLog;
  }

  /** True when there is anything to freeze. */
  get enabled(): boolean {
    return this.mounts.length > 0 || this.freezeCmd !== undefined;
  }

  /**
   * Freezes; if the freeze hook or fsfreeze fails or exceeds timeoutMs,
   * everything already frozen is thawed (thaw hook included) and it rejects
   * with a DrError code 'quiesce_failed' naming the command and the remedy.
   * `timeoutMs` counts from the call: the watchdog's start and the freeze
   * steps come out of the same budget, so the volumes never stay frozen longer.
   * Without anything to freeze it resolves at once with a `fuzzy` label.
   */
  async freeze(): Promise<Frozen> {
    if (!this.enabled) {
      return {
        label: 'fuzzy',
        enterMs: 0,
        thaw: async () => ({ frozenMs: 0, expired: false }),
      };
    }
    // A new watchdog is a process start (seconds on a busy machine): that happens first, with its
    // own bound, while nothing is frozen, so it does not eat the freeze's budget.
    await this.warmWatchdog();
    // The agent's deadline is set before the watchdog is armed, so it is never later than the
    // watchdog's: the agent may call a freeze expired too early, never too late.
    const deadline = performance.now() + this.timeoutMs;
    const left = () => Math.max(1, deadline - performance.now());
    const watchdog = await this.startWatchdog(left());
    // Each mount's thaw is forked now, before anything is frozen: inside the freeze it then costs
    // a pipe write and an exec, not a fork of this large process (bench:rpo's freeze split).
    const armed = new Map(this.mounts.map((m) => [m, armThaw(m)] as const));
    const disarm = () => {
      for (const a of armed.values()) a.disarm();
    };
    const entering = performance.now();
    const frozen: string[] = [];
    let hookRan = false;
    let frozenAt: number | undefined;
    try {
      if (this.freezeCmd !== undefined) {
        hookRan = true;
        const ms = left();
        const r = await runHook(this.freezeCmd, ms);
        if (!succeeded(r)) throw this.failure('freeze hook (freezeCmd)', 'freezeCmd', r, ms);
        if (this.mounts.length === 0) frozenAt = performance.now();
      }
      for (const mount of this.mounts) {
        const ms = left();
        const r = await fsfreeze('-f', mount, ms);
        if (r.timedOut) {
          // The freeze may still complete in the kernel after the kill: wait for it, then thaw it too.
          await bounded(r.exited, THAW_STEP_MS);
          frozen.push(mount);
        }
        if (!succeeded(r)) throw this.failure(`fsfreeze -f ${mount}`, mount, r, ms);
        frozen.push(mount);
        frozenAt ??= performance.now();
      }
      if (performance.now() >= deadline) {
        throw new DrError(`quiesce took longer than its timeout of ${this.timeoutMs} ms`, {
          code: 'quiesce_failed',
          subject: this.mounts[0] ?? 'freezeCmd',
          remedy:
            'make the freeze hook finish sooner or raise the quiesce timeout (`dr app add … --quiesce-timeout`)',
        });
      }
    } catch (err) {
      const { errors } = await thawAll({
        mounts: frozen,
        thawCmd: hookRan ? this.thawCmd : undefined,
        timeoutMs: this.timeoutMs,
        armed,
      });
      disarm();
      watchdog.done();
      if (errors.length > 0) this.log.error({ errors }, 'thaw after a failed freeze failed');
      throw err;
    }
    const label: CutLabel = this.freezeCmd !== undefined ? 'app-consistent' : 'crash-consistent';
    const since = frozenAt ?? performance.now();
    let result: Promise<ThawResult> | undefined;
    return {
      label,
      enterMs: since - entering,
      thaw: () => {
        result ??= this.thaw(watchdog, since, deadline, armed).finally(disarm);
        return result;
      },
    };
  }

  /** Thaws anything this app may have left frozen by a crash (fsfreeze -u on each mount point, ignoring "not frozen"); call once at agent start. */
  async recover(): Promise<void> {
    const { thawed, errors } = await thawAll({ mounts: this.mounts, timeoutMs: this.timeoutMs });
    if (thawed.length > 0) {
      this.log.warn({ mounts: thawed }, 'thawed file systems an earlier agent left frozen');
    }
    if (errors.length > 0) {
      throw new DrError(
        `cannot make sure the app's file systems are thawed: ${errors.join('; ')}`,
        {
          code: 'quiesce_failed',
          subject: this.mounts.join(', '),
          remedy:
            'check that each --fsfreeze path is a mounted file system and the agent runs as root',
        },
      );
    }
  }

  private async thaw(
    watchdog: Watchdog,
    frozenAt: number,
    deadline: number,
    armed: ReadonlyMap<string, ArmedCommand>,
  ): Promise<ThawResult> {
    const expired = performance.now() >= deadline;
    let errors: string[] = [];
    // Past the deadline the watchdog is thawing (or has): wait for it rather than run the hook twice.
    const thawing = performance.now();
    const byWatchdog = expired && (await bounded(watchdog.exited, THAW_STEP_MS)) === 0;
    if (!byWatchdog) {
      ({ errors } = await thawAll({
        mounts: this.mounts,
        thawCmd: this.thawCmd,
        timeoutMs: this.timeoutMs,
        armed,
      }));
    }
    watchdog.done();
    const thawMs = performance.now() - thawing;
    const frozenMs = Math.max(0, performance.now() - frozenAt);
    if (expired) {
      this.log.warn(
        { frozenMs, timeoutMs: this.timeoutMs },
        'frozen past the quiesce timeout: the watchdog thawed first',
      );
    }
    if (errors.length > 0) {
      this.log.error({ errors }, 'thaw failed');
      return { frozenMs, thawMs, expired, thawError: errors.join('; ') };
    }
    return { frozenMs, thawMs, expired };
  }

  private failure(what: string, subject: string, r: CommandResult, ms: number): DrError {
    const fields = { code: r.code, signal: r.signal, timedOut: r.timedOut, stderr: r.stderr };
    this.log.warn(fields, `${what} failed; thawing`);
    return new DrError(`${what} ${describeFailure(r, ms)}`, {
      code: 'quiesce_failed',
      subject,
      remedy: r.timedOut
        ? 'make it finish sooner or raise the quiesce timeout (`dr app add … --quiesce-timeout`)'
        : subject === 'freezeCmd'
          ? "run the app's freeze command by hand as the agent's user and fix it"
          : 'check that it is a mounted file system that supports freezing (ext4, xfs) and the agent runs as root',
    });
  }

  /**
   * Starts the watchdog when none is alive and waits, up to WATCHDOG_START_MS, until it answers an
   * empty plan (nothing to thaw), then disarms it: arming it for a cut is then a pipe round trip.
   */
  private async warmWatchdog(): Promise<void> {
    if (this.watchdog?.alive()) return;
    const watchdog = spawnWatchdog(this.watchdogLog);
    this.watchdog = watchdog;
    const empty = JSON.stringify({ mounts: [], timeoutMs: WATCHDOG_START_MS });
    const ready = await bounded(watchdog.arm(empty), WATCHDOG_START_MS);
    if (ready !== true) {
      watchdog.close();
      this.watchdog = undefined;
      throw new DrError(`the thaw watchdog did not start within ${WATCHDOG_START_MS} ms`, {
        code: 'quiesce_failed',
        subject: watchdogScript(),
        remedy: `run \`${process.execPath} ${watchdogScript()}\` by hand to see why it fails`,
      });
    }
    watchdog.done();
  }

  /**
   * Arms the watchdog with this cut's thaw plan, starting it first when none
   * is alive; resolves once it has answered `ready`. One watchdog serves all
   * the cuts of an agent, so a cut pays no process start.
   */
  private async startWatchdog(ms: number): Promise<Watchdog> {
    const plan = JSON.stringify({
      mounts: this.mounts,
      thawCmd: this.thawCmd,
      timeoutMs: this.timeoutMs,
    });
    if (!this.watchdog?.alive()) this.watchdog = spawnWatchdog(this.watchdogLog);
    const watchdog = this.watchdog;
    const ready = await bounded(watchdog.arm(plan), ms);
    if (ready !== true) {
      watchdog.close();
      this.watchdog = undefined;
      throw new DrError(`the thaw watchdog did not get ready within ${Math.round(ms)} ms`, {
        code: 'quiesce_failed',
        subject: watchdogScript(),
        remedy: `raise the quiesce timeout, or run \`${process.execPath} ${watchdogScript()}\` by hand to see why it fails`,
      });
    }
    return watchdog;
  }

  /** Lets the watchdog go (between cuts it is disarmed: nothing is thawed). Call when the agent stops. */
  close(): void {
    this.watchdog?.close();
    this.watchdog = undefined;
  }
}
