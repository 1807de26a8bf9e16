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
  /** How often each app's RPO goes into its history (a sorted set), for the status page's chart. */
  historyEveryMs?: number;
  /** How far back the history reaches; older samples are trimmed. */
  historyKeepMs?: number;
  log?: Logger;
  now?: () => number;
}

/** Where the engine finds replication state in Redis. */
export const replicationKey = (prefix = 'lifeboat:') => `${prefix}replication`;

/**
 * Where an app's RPO history is kept: a sorted set scored by sample time (ms), each member
 * `<time>:<lag seconds or ->:<phase>`, trimmed to `historyKeepMs`.
 */
export const rpoHistoryKey = (app: string, prefix = 'lifeboat:') => `${prefix}rpo:${app}`;

/** One history sample as stored; `lagSeconds` is null while the app has no consistent point. */
export interface RpoSample {
  time: number;
  lagSeconds: number | null;
  phase: string;
}

export function encodeRpoSample(s: RpoSample): string {
  return `${s.time}:${s.lagSeconds === null ? '-' : s.lagSeconds.toFixed(1)}:${s.phase}`;
}

export function decodeRpoSample(member: string): RpoSample | undefined {
  const m = /^(\d+):(-|\d+(?:\.\d+)?):([a-z-]+)$/.exec(member);
  if (!m) return undefined;
  return { time: Number(m[1]), lagSeconds: m[2] === '-' ? null : Number(m[2]), phase: m[3] ?? '' };
}

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
