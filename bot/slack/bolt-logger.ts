import type { Logger as BoltLogger, LogLevel } from '@slack/bolt';
import type { Logger } from '../../core/log.js';

/** Bolt's logger interface on our pino logger; Bolt's chatter stays at warn and above. */
export function boltLogger(log: Logger): BoltLogger {
  let level = 'warn' as LogLevel;
  return {
    debug: () => undefined,
    info: () => undefined,
    warn: (...msg: unknown[]) => log.warn(msg.map(String).join(' ')),
    error: (...msg: unknown[]) => log.error(msg.map(String).join(' ')),
    setLevel: (l: LogLevel) => {
      level = l;
    },
    getLevel: () => level,
    setName: () => undefined,
  };
}
