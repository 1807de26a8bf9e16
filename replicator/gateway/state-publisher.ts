import type { Redis } from 'ioredis';
import { errorMessage } from '../../core/errors.js';
import { type Logger, silentLog } from '../../core/log.js';
import type { AppStatus } from '../transport/wire-types.js';
import {
  encodeRpoSample,
  RPO_TIERS,
  type RpoTier,
  rollUpRpoSample,
  rpoHistoryKey,
} from './rpo-history.js';

export {
  decodeRpoSample,
  encodeRpoSample,
  type RpoSample,
  rpoHistoryKey,
} from './rpo-history.js';

export interface StatePublisherOptions {
  redis: Redis;
  /** The replication state of every app, as `dr status` shows it. */
  statuses: () => AppStatus[];
  /** Key prefix; the hash is `<prefix>replication`, the channel the same name. */
  prefix?: string;
  everyMs?: number;
  /** How often each app's RPO goes into its history (a sorted set), for the status page's chart. */
  historyEveryMs?: number;
  /** How far back the history reaches; older samples are trimmed. */
  historyKeepMs?: number;
  /** The rolled-up tiers each sample also goes into (rpo-history.ts), for reports beyond a day. */
  tiers?: readonly RpoTier[];
  log?: Logger;
  now?: () => number;
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
  historyEveryMs = 10_000,
  historyKeepMs = 24 * 3_600_000,
  tiers = RPO_TIERS,
  log = silentLog,
  now = Date.now,
}: StatePublisherOptions): { stop: () => Promise<void>; publishNow: () => Promise<void> } {
  const key = replicationKey(prefix);
  let failing = false;
  let lastSample = Number.NEGATIVE_INFINITY;
  const publishNow = async () => {
    const all = statuses();
    if (all.length === 0) return;
    const t = now();
    const sample = t - lastSample >= historyEveryMs;
    try {
      const m = redis.multi();
      for (const s of all)
        m.hset(key, s.app, JSON.stringify({ ...s, publishedAt: new Date(t).toISOString() }));
      m.publish(key, JSON.stringify(all));
      if (sample) {
        for (const s of all) {
          const hk = rpoHistoryKey(s.app, prefix);
          m.zadd(hk, t, encodeRpoSample({ time: t, lagSeconds: s.lagSeconds, phase: s.phase }));
          m.zremrangebyscore(hk, '-inf', `(${t - historyKeepMs}`);
          rollUpRpoSample(
            m,
            s.app,
            { time: t, lagSeconds: s.lagSeconds, phase: s.phase },
            prefix,
            tiers,
          );
        }
      }
      await m.exec();
      if (sample) lastSample = t;
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
