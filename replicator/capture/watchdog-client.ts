/** The agent's side of the thaw watchdog process: finding its script, starting it and talking to it over a pipe. */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { DrError } from '../../core/errors.js';

/** The watchdog of one freeze, as the agent sees it. */
export interface Watchdog {
  /** Tells it the agent has thawed: it disarms and waits for the next cut. */
  done(): void;
  /** Its exit code once it has exited (null when killed by a signal). */
  exited: Promise<number | null>;
  /** Arms it with a plan; resolves true once it answered `ready` (false if it exited). */
  arm(plan: string): Promise<boolean>;
  alive(): boolean;
  /** Lets it exit (it is disarmed between cuts, so nothing is thawed). */
  close(): void;
}

/**
 * The compiled watchdog sits beside this module (dist/replicator/capture/).
 * Vitest runs the .ts sources, where it does not; there the one `npm run build`
 * made under dist/ (relative to the repo root) is used, and `npm test` builds first.
 */
export function watchdogScript(): string {
  const beside = fileURLToPath(new URL('./thaw-watchdog.js', import.meta.url));
  if (existsSync(beside)) return beside;
  return fileURLToPath(new URL('../../dist/replicator/capture/thaw-watchdog.js', import.meta.url));
}

/** Starts a thaw watchdog, detached, its log lines appended to `watchdogLog` (dropped when undefined). */
export function spawnWatchdog(watchdogLog: string | undefined): Watchdog {
  const script = watchdogScript();
  if (!existsSync(script)) {
    throw new DrError(`the thaw watchdog ${script} is missing`, {
      code: 'quiesce_failed',
      subject: script,
      remedy: 'build Lifeboat with `npm run build` (it compiles the watchdog)',
    });
  }
  const logFd = watchdogLog !== undefined ? openSync(watchdogLog, 'a') : undefined;
  let child: ChildProcess;
  try {
    // The agent's pid on argv only names the agent in `ps`; plans go over stdin.
    child = spawn(process.execPath, [script, `--agent=${process.pid}`], {
      detached: true,
      stdio: ['pipe', 'pipe', logFd ?? 'ignore'],
    });
  } finally {
    if (logFd !== undefined) closeSync(logFd);
  }
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', () => resolve(null));
  });
  const stdin = child.stdin as Socket;
  stdin.on('error', () => undefined); // EPIPE: the watchdog has exited, and `exited` tells why
  // Each `ready` line answers the oldest plan sent.
  const waiting: Array<(ok: boolean) => void> = [];
  let text = '';
  child.stdout?.on('data', (c: Buffer) => {
    text += c.toString();
    let nl = text.indexOf('\n');
    while (nl >= 0) {
      if (text.slice(0, nl).trim() === 'ready') waiting.shift()?.(true);
      text = text.slice(nl + 1);
      nl = text.indexOf('\n');
    }
  });
  void exited.then(() => {
    for (const w of waiting.splice(0)) w(false);
  });
  // Neither holds the agent's event loop open: if the agent ends, the pipe closes and the watchdog thaws.
  child.unref();
  stdin.unref();
  (child.stdout as Socket | null)?.unref();
  const alive = () => child.exitCode === null && child.signalCode === null && !stdin.destroyed;
  return {
    exited,
    alive,
    arm: (plan) =>
      new Promise<boolean>((resolve) => {
        if (!alive()) return resolve(false);
        waiting.push(resolve);
        stdin.write(`${plan}\n`);
      }),
    done: () => {
      if (alive()) stdin.write('done\n');
    },
    close: () => {
      if (!stdin.destroyed) stdin.end();
    },
  };
}
