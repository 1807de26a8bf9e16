import pino, { type Logger } from 'pino';

export type { Logger } from 'pino';

export interface LoggerOptions {
  /** pino level; `DR_LOG_LEVEL` sets it from the environment. */
  level?: string;
  /** Where lines go; standard error by default so standard output stays for results. */
  destination?: NodeJS.WritableStream;
  name?: string;
}

export function createLogger({
  level = 'info',
  destination,
  name = 'dr',
}: LoggerOptions = {}): Logger {
  return pino(
    { name, level, base: { pid: process.pid } },
    destination ?? pino.destination({ fd: 2, sync: true }),
  );
}

/** A logger that drops everything: the default for library code and tests. */
export const silentLog: Logger = pino({ level: 'silent' });
