import { Redis } from 'ioredis';
import { afterEach, describe, expect, it, type TestContext } from 'vitest';
import {
  decodeRpoSample,
  encodeRpoSample,
  rpoHistoryKey,
  startStatePublisher,
} from '../../../../replicator/gateway/state-publisher.js';
import type { AppStatus } from '../../../../replicator/transport/wire-types.js';
import { redisUnavailable, startRedis, type TestRedis } from '../../../helpers/redis-server.js';
import { skipBecause } from '../../../helpers/skip.js';

const status = (app: string, lagSeconds: number | null): AppStatus => ({
  app,
  phase: 'continuous',
  agent: null,
  lastPoint: null,
  lastConsistentPoint: null,
  lagSeconds,
  trackers: {},
  lastFreezeMs: null,
  lastResync: null,
  points: 0,
  bytesShipped: 0,
  throughputBytesPerSec: 0,
  storedBytes: 0,
  backlogBytes: 0,
});

describe('RPO history the gateway keeps in Redis', () => {
  let redis: TestRedis | undefined;
  afterEach(async () => {
    await redis?.stop();
    redis = undefined;
  });

  it('round-trips a sample, a missing lag included, and rejects garbage', () => {
    for (const s of [
      { time: 1_700_000_000_000, lagSeconds: 2.5, phase: 'continuous' },
      { time: 1_700_000_000_001, lagSeconds: null, phase: 'initial-sync' },
    ])
      expect(decodeRpoSample(encodeRpoSample(s))).toEqual(s);
    expect(decodeRpoSample('nonsense')).toBeUndefined();
    expect(decodeRpoSample('12:abc:continuous')).toBeUndefined();
  });

  it('samples every historyEveryMs per app and trims what is older than historyKeepMs', async (ctx: TestContext) => {
    const why = redisUnavailable();
    if (why) skipBecause(ctx, why);
    redis = await startRedis();
    const r = new Redis(redis.url);
    let clock = 1_000_000;
    let lag = 1;
    const prefix = `t${Date.now()}:`;
    const pub = startStatePublisher({
      redis: r,
      prefix,
      statuses: () => [status('web', lag), status('db', null)],
      everyMs: 3_600_000, // only the explicit publishNow calls below
      historyEveryMs: 10_000,
      historyKeepMs: 60_000,
      now: () => clock,
    });
    try {
      for (let i = 0; i < 20; i++) {
        await pub.publishNow();
        clock += 5_000; // two publishes per sample interval
        lag += 1;
      }
      const web = (await r.zrange(rpoHistoryKey('web', prefix), '0', '-1')).map(decodeRpoSample);
      // 20 publishes over 100 s, sampled every 10 s, the last 60 s kept.
      expect(web.length).toBe(7);
      const times = web.map((s) => s?.time ?? 0);
      expect(Math.max(...times) - Math.min(...times)).toBeLessThanOrEqual(60_000);
      expect(web.every((s) => s?.lagSeconds !== null)).toBe(true);
      const db = (await r.zrange(rpoHistoryKey('db', prefix), '0', '-1')).map(decodeRpoSample);
      expect(db.every((s) => s?.lagSeconds === null)).toBe(true);
    } finally {
      await pub.stop();
      r.disconnect();
    }
  });
});
