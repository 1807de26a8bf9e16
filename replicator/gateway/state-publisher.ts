import type { Redis } from 'ioredis';
import { errorMessage } from '../../core/errors.js';
import { type Logger, silentLog } from '../../core/log.js';
import type { AppStatus } from '../transport/wire-types.js';

export interface StatePublisherOptions {
  redis: Redis;
  /** The replication state of every app, as `dr status` shows it. */
  statuses: () => AppStatus[];
  /** Key prefix; the hash is `<prefix>replication`, the channel the same name. */
  prefix?: string;
  everyMs?: number;
  log?: Logger;
}

/** Where the engine finds replication state in Redis. */
export const replicationKey = (prefix = 'lifeboat:') => `${prefix}replication`;

/**
 * Publishes each app's replication state to Redis once a second: a hash
 * (app → JSON) to read at any time, and a message on a channel of the same
 * name for those who listen. Redis being away only delays it.
 */
export function startStatePublisher({
  redis,
  statuses,
  prefix = 'lifeboat:',
  everyMs = 1000,
  log = silentLog,
}: StatePublisherOptions): { stop: () => Promise<void>; publishNow: () => Promise<void> } {
  const key = replicationKey(prefix);
  let failing = false;
  const publishNow = async () => {
    const all = statuses();
    if (all.length === 0) return;
    try {
      const m = redis.multi();
      for (const s of all)
        m.hset(key, s.app, JSON.stringify({ ...s, publishedAt: new Date().toISOString() }));
      m.publish(key, JSON.stringify(all));
      await m.exec();
      if (failing) log.info('replication state reaches Redis again');
      failing = false;
    } catch (err) {
      if (!failing)
        log.warn(
          { err: errorMessage(err) },
          'cannot publish replication state to Redis; will retry',
        );
      failing = true;
    }
  };
  let running: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    running = running.then(publishNow);
  }, everyMs);
  timer.unref();
  return {
    publishNow: () => {
      running = running.then(publishNow);
      return running;
    },
    stop: async () => {
      clearInterval(timer);
      await running;
    },
  };
}
