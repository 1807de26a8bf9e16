import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from './atomic-file.js';
import { envIsSet } from './env.js';
import { pidAlive } from './pid-alive.js';

/** One process `dr up` runs. */
export interface UpChild {
  name: string;
  pid: number;
  /** Where its output goes. */
  log: string;
}

/**
 * What a running `dr up` tells the other `dr` commands of the same DR_HOME (DR_HOME/run/up.json):
 * where its Redis and gateway are, so `dr status`, `dr drill` and `dr chat` need no flags.
 */
export interface UpState {
  pid: number;
  startedAt: string;
  home: string;
  /** redis://127.0.0.1:PORT of the Redis it started, or the REDIS_URL it was given (never logged with a password). */
  redisUrl: string;
  /** DR_REDIS_PREFIX in force, when not the default. */
  prefix?: string;
  /** HOST:PORT where agents and the CLI reach the gateway. */
  gateway: string;
  /** HOST:PORT of `dr serve` (chat webhooks, status page), when it runs. */
  listen?: string;
  children: UpChild[];
}

export const runDir = (home: string): string => join(home, 'run');
export const upStatePath = (home: string): string => join(runDir(home), 'up.json');

/** The state of the `dr up` running on this home, or undefined when none runs (a stale file is ignored). */
export function readUpState(home: string): UpState | undefined {
  const state = readUpFile(home);
  return state && pidAlive(state.pid) ? state : undefined;
}

/** up.json as written, live or not (a crashed `dr up` leaves it, naming children to stop). */
export function readUpFile(home: string): UpState | undefined {
  try {
    const parsed = JSON.parse(readFileSync(upStatePath(home), 'utf8')) as UpState;
    return typeof parsed?.pid === 'number' && Array.isArray(parsed.children) ? parsed : undefined;
  } catch {
    // Missing, torn or not JSON: no `dr up` to talk to, which is what undefined says.
    return undefined;
  }
}

export async function writeUpState(home: string, state: UpState): Promise<void> {
  await writeFileAtomic(upStatePath(home), `${JSON.stringify(state, null, 2)}\n`, 0o600);
}

/**
 * The environment a command sees: REDIS_URL, DR_GATEWAY and DR_REDIS_PREFIX filled in from the
 * `dr up` running on `home` where they are unset. Explicit settings always win.
 */
export function withUpDefaults(home: string, env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  if (envIsSet('REDIS_URL', env) && envIsSet('DR_GATEWAY', env)) return env;
  const up = readUpState(home);
  if (!up) return env;
  const out = { ...env };
  if (!envIsSet('REDIS_URL', out)) {
    out.REDIS_URL = up.redisUrl;
    if (!envIsSet('DR_REDIS_PREFIX', out) && up.prefix) out.DR_REDIS_PREFIX = up.prefix;
  }
  if (!envIsSet('DR_GATEWAY', out)) out.DR_GATEWAY = up.gateway;
  return out;
}
