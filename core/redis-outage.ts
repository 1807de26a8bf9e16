/** One line when this process loses Redis and one when it has it back, however many connections and retries. */
import type { Redis } from 'ioredis';
import { readEnv } from './env.js';
import { errorMessage, systemCode } from './errors.js';
import type { Logger } from './log.js';

/**
 * Set by `dr up` for its children when it runs Redis itself: it says on its own terminal that
 * Redis stopped and is being restarted, and that it is back, so the children keep those lines in
 * their logs (info) instead of repeating them on the same terminal.
 */
export const REDIS_SUPERVISED_VARIABLE = 'DR_REDIS_SUPERVISED' as const;

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** Whether the error says the connection to Redis is gone (as opposed to a refused command). */
export function isConnectionError(err: unknown): boolean {
  const code = systemCode(err);
  if (code && CONNECTION_CODES.has(code)) return true;
  return /Connection is closed|connect E[A-Z]+|read ECONNRESET|write EPIPE|Stream isn't writeable|Socket closed unexpectedly|MaxRetriesPerRequest/i.test(
    errorMessage(err),
  );
}

interface OutageState {
  down: boolean;
  since: number;
}

/** Per process: every connection of it shares one outage. */
const state: OutageState = { down: false, since: 0 };

/** Forgets an outage (tests that run several "processes" in one). */
export function resetRedisOutage(): void {
  state.down = false;
  state.since = 0;
}

/** A bad value is no reason to lose the line: anything but `1` means warnings. */
const supervised = (env: NodeJS.ProcessEnv): boolean => {
  try {
    return readEnv('DR_REDIS_SUPERVISED', env) === true;
  } catch {
    return false; // a malformed value: the louder default
  }
};

const say = (log: Logger, env: NodeJS.ProcessEnv) =>
  supervised(env) ? log.info.bind(log) : log.warn.bind(log);

/**
 * Reports an error of a Redis connection (or of a BullMQ queue or worker on one): the first
 * connection error of an outage as one line, the retries that follow only at debug; any other
 * error as it is, naming `what`.
 */
export function reportRedisError(
  log: Logger,
  err: unknown,
  what: string,
  env: NodeJS.ProcessEnv = process.env,
  now = Date.now,
): void {
  if (!isConnectionError(err)) {
    log.warn({ err: errorMessage(err) }, `${what}: Redis error`);
    return;
  }
  if (state.down) {
    log.debug({ err: errorMessage(err), part: what }, 'Redis still unreachable; retrying');
    return;
  }
  state.down = true;
  state.since = now();
  say(log, env)(
    { err: errorMessage(err) },
    'Redis is unreachable; waiting for it to come back (commands wait, nothing is lost)',
  );
}

/** Reports that a connection answers again, once per outage. */
export function reportRedisReady(
  log: Logger,
  env: NodeJS.ProcessEnv = process.env,
  now = Date.now,
): void {
  if (!state.down) return;
  state.down = false;
  say(log, env)(
    { downForMs: now() - state.since },
    `Redis is back after ${((now() - state.since) / 1000).toFixed(1)} s`,
  );
}

/** Reports a connection's errors and recovery as above. */
export function watchRedis(conn: Redis, log: Logger, what: string): Redis {
  conn.on('error', (err: Error) => reportRedisError(log, err, what));
  conn.on('ready', () => reportRedisReady(log));
  return conn;
}
