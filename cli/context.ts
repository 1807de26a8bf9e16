import { join } from 'node:path';
import type { Command } from 'commander';
import { type LoadedConfig, readConfig } from '../core/config.js';
import { peekEnv, readEnv } from '../core/env.js';
import { DrError, errorMessage, isDrError } from '../core/errors.js';
import { resolveHome } from '../core/home.js';
import type { Logger } from '../core/log.js';
import { withUpDefaults } from '../core/up-state.js';
import { createCliLog } from './cli-log.js';

/** What every command gets: where the home is, how to read its config, where to log. */
export interface CliContext {
  home: string;
  env: NodeJS.ProcessEnv;
  log: Logger;
  out: (line: string) => void;
  config: () => Promise<LoadedConfig>;
}

/**
 * The context of one command. Where a `dr up` runs on the same home, its Redis and gateway fill in
 * REDIS_URL and DR_GATEWAY when those are unset, so every command finds them without flags.
 */
export function contextOf(cmd: Command, processEnv: NodeJS.ProcessEnv = process.env): CliContext {
  const opts = cmd.optsWithGlobals<{ home?: string }>();
  const home = resolveHome(opts.home, processEnv);
  const env = withUpDefaults(home, processEnv);
  let cached: Promise<LoadedConfig> | undefined;
  let log: Logger | undefined;
  logLevelOf(env); // a misspelt DR_LOG_LEVEL is reported by every command, logging or not
  return {
    home,
    env,
    // Made on first use: a command that fails on its config first leaves no log file behind.
    get log(): Logger {
      log ??= commandLog(cmd, home, env);
      return log;
    },
    out: (line) => process.stdout.write(`${line}\n`),
    config: () => {
      cached ??= readConfig(home, env);
      return cached;
    },
  };
}

/** Commands that run until stopped, by the name of their log file (`--once` runs are not). */
function backgroundPart(cmd: Command): string | undefined {
  const opts = cmd.opts<{ once?: boolean; app?: string }>();
  switch (cmd.name()) {
    case 'gateway':
    case 'worker':
    case 'serve':
    case 'warm':
      return cmd.name();
    case 'agent':
      return opts.once ? undefined : `agent-${opts.app ?? 'app'}`;
    default:
      return undefined;
  }
}

/** The logger of this command: see cli-log.ts for where its lines go. */
function commandLog(cmd: Command, home: string, env: NodeJS.ProcessEnv): Logger {
  const part = backgroundPart(cmd);
  const tty = process.stderr.isTTY === true;
  const { log, file } = createCliLog({
    level: logLevelOf(env),
    env,
    tty,
    ...(part ? { background: { file: part, logsDir: join(home, 'logs') } } : {}),
  });
  if (file && part && tty)
    process.stderr.write(`dr ${cmd.name()}: its log is ${file}; warnings show here too\n`);
  return log;
}

/** DR_LOG_LEVEL, checked: a misspelt level is one clear line, not pino's exception. */
export function logLevelOf(env: NodeJS.ProcessEnv): string {
  return readEnv('DR_LOG_LEVEL', env);
}

/** Exit code a command returns; a thrown DrError becomes one clear line and exit 2 (1 for findings). */
export type ExitCode = number;

export function reportError(err: unknown, json: boolean): ExitCode {
  if (json) {
    const body = isDrError(err)
      ? { error: { code: err.code, message: err.message, subject: err.subject } }
      : { error: { code: 'internal', message: errorMessage(err) } };
    process.stdout.write(`${JSON.stringify(body)}\n`);
  }
  process.stderr.write(`${errorLine(err, peekEnv('DR_LOG_LEVEL'))}\n`);
  return 2;
}

/**
 * The one line a failed command prints: a DrError's message (which carries its remedy), or an
 * unexpected error's first line with the way to see more. The stack trace is for
 * `DR_LOG_LEVEL=debug` (or trace) only: a user who mistyped a path needs the path, not a trace.
 */
export function errorLine(err: unknown, level: string | undefined): string {
  const verbose = level === 'debug' || level === 'trace';
  if (isDrError(err)) {
    const cause = verbose && err.cause instanceof Error ? `\n  cause: ${err.cause.stack}` : '';
    return `dr: ${err.message}${cause}`;
  }
  if (verbose && err instanceof Error) return `dr: unexpected error: ${err.stack ?? err.message}`;
  const first = errorMessage(err).split('\n')[0];
  return `dr: unexpected error: ${first}. To resolve, check the input it names; run again with DR_LOG_LEVEL=debug for the details`;
}

export function usageError(message: string, remedy: string): DrError {
  return new DrError(message, { code: 'usage', remedy });
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Each command action sets this; `run` returns it as the process exit code. */
export interface ExitState {
  code: number;
}

/** Runs a command body: its return value is the exit code, a thrown error is reported once. */
export async function runAction(
  exit: ExitState,
  json: boolean | undefined,
  body: () => Promise<number | undefined>,
): Promise<void> {
  try {
    exit.code = (await body()) ?? 0;
  } catch (err) {
    exit.code = reportError(err, json === true);
  }
}
