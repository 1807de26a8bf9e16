// How a long-running `dr` part stops: SIGINT or SIGTERM starts a graceful stop that has a deadline.
import { ENV, readEnv } from '../core/env.js';

/** How long a graceful stop may take by default before the part exits anyway. */
export const DEFAULT_STOP_TIMEOUT_MS = ENV.DR_STOP_TIMEOUT.fallback;

export interface StopSignalOptions {
  /** The part, as the deadline line names it: `dr worker`. */
  part: string;
  /** What an exit at the deadline leaves behind and why that is safe, for the deadline line. */
  abandons: string;
  /** DR_STOP_TIMEOUT is read from here. */
  env: NodeJS.ProcessEnv;
  /** Where the deadline line goes; standard error by default. */
  warn?: (line: string) => void;
  /** How the process ends at the deadline; `process.exit` by default. */
  exit?: (code: number) => void;
}

export interface StopSignal {
  /** Aborted at the first SIGINT or SIGTERM. */
  readonly signal: AbortSignal;
  /** Resolves with the first signal's name. */
  readonly requested: Promise<NodeJS.Signals>;
  /** What a second signal does (stop now); without it a second signal exits at once. */
  onSecond(fn: () => void): void;
  /** The graceful stop is over (or the part ended by itself): handlers and deadline go. */
  dispose(): void;
}

/** DR_STOP_TIMEOUT, checked: a duration of at least 1 s, 10 s when unset. */
export function stopTimeoutMs(env: NodeJS.ProcessEnv): number {
  return readEnv('DR_STOP_TIMEOUT', env);
}

/**
 * Listens for SIGINT and SIGTERM. The first starts the caller's graceful stop (through `signal`
 * and `requested`) and arms the deadline: a part still running then (Redis, the gateway or a
 * chat service unreachable, so a close waits on nothing) says what it leaves behind and exits 0,
 * which is safe because every part's in-flight work is resumable elsewhere. A second signal
 * stops at once. Call it before anything slow starts, so a bad DR_STOP_TIMEOUT fails first.
 */
export function stopSignal({
  part,
  abandons,
  env,
  warn = (line) => process.stderr.write(`${line}\n`),
  exit = (code) => process.exit(code),
}: StopSignalOptions): StopSignal {
  const timeoutMs = stopTimeoutMs(env);
  const controller = new AbortController();
  let first: NodeJS.Signals | undefined;
  let second: (() => void) | undefined;
  let deadline: NodeJS.Timeout | undefined;
  let resolveRequested: (sig: NodeJS.Signals) => void = () => undefined;
  const requested = new Promise<NodeJS.Signals>((resolve) => {
    resolveRequested = resolve;
  });
  const onSignal = (sig: NodeJS.Signals) => {
    if (first === undefined) {
      first = sig;
      // unref: a part whose stop finished exits by itself without waiting for the deadline.
      deadline = setTimeout(() => {
        warn(
          `${part}: did not stop within ${Math.round(timeoutMs / 1000)} s of ${sig}; exiting now (${abandons})`,
        );
        exit(0);
      }, timeoutMs).unref();
      controller.abort();
      resolveRequested(sig);
      return;
    }
    if (second) second();
    else {
      warn(`${part}: ${sig} again; exiting now (${abandons})`);
      exit(0);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    requested,
    onSecond: (fn) => {
      second = fn;
    },
    dispose: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      if (deadline) clearTimeout(deadline);
    },
  };
}
