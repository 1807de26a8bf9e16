import { Redis } from 'ioredis';
import { afterEach, describe, expect, it, type TestContext } from 'vitest';
import { gatherDrillReport } from '../../../../engine/drill-report.js';
import { emptyAppStatus } from '../../../../replicator/gateway/app-status.js';
import {
  RPO_TIERS,
  readRpoRange,
  rollUpRpoSample,
  rpoTierKey,
} from '../../../../replicator/gateway/rpo-history.js';
import {
  decodeRpoSample,
  encodeRpoSample,
  rpoHistoryKey,
  startStatePublisher,
} from '../../../../replicator/gateway/state-publisher.js';
import type { AppStatus } from '../../../../replicator/transport/wire-types.js';
import { redisUnavailable, startRedis, type TestRedis } from '../../../helpers/redis-server.js';
import { skipBecause } from '../../../helpers/skip.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

const status = (app: string, lagSeconds: number | null): AppStatus => ({
  ...emptyAppStatus(app, 'continuous'),
  lagSeconds,
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

describe('RPO history beyond a day: rolled-up tiers', () => {
  let redis: TestRedis | undefined;
  afterEach(async () => {
    await redis?.stop();
    redis = undefined;
  });

  it('keeps each bucket’s highest lag, a missing lag losing to a number, and skips foreign members', async (ctx: TestContext) => {
    const why = redisUnavailable();
    if (why) skipBecause(ctx, why);
    redis = await startRedis();
    const r = new Redis(redis.url);
    const prefix = `b${Date.now()}:`;
    const tier = { suffix: '1m', bucketMs: 60_000, keepMs: 10 * 60_000 };
    try {
      const t0 = 1_800_000_000_000 - (1_800_000_000_000 % 60_000);
      await r.zadd(rpoTierKey('db', tier, prefix), t0 - 60_000, 'not a sample');
      for (const [dt, lag] of [
        [0, null],
        [10_000, 4],
        [20_000, 95.5],
        [30_000, 3],
        [40_000, null],
        [70_000, 2],
      ] as const) {
        const m = r.multi();
        rollUpRpoSample(m, 'db', { time: t0 + dt, lagSeconds: lag, phase: 'continuous' }, prefix, [
          tier,
        ]);
        await m.exec();
      }
      const got = await readRpoRange(r, prefix, 'db', t0 - 120_000, t0 + 120_000, [tier]);
      expect(got).toEqual([
        { time: t0, lagSeconds: 95.5, phase: 'continuous' },
        { time: t0 + 60_000, lagSeconds: 2, phase: 'continuous' },
      ]);
      // A sample 20 min later trims what is older than the tier's 10 min.
      const m = r.multi();
      rollUpRpoSample(m, 'db', { time: t0 + 20 * 60_000, lagSeconds: 1, phase: 'paused' }, prefix, [
        tier,
      ]);
      await m.exec();
      expect(await r.zcard(rpoTierKey('db', tier, prefix))).toBe(1);
    } finally {
      r.disconnect();
    }
  });

  it('100 days of samples stay bounded per tier, and a 30-day report finds exactly the breaches in it', async (ctx: TestContext) => {
    const why = redisUnavailable();
    if (why) skipBecause(ctx, why);
    redis = await startRedis();
    const r = new Redis(redis.url);
    const prefix = `l${Date.now()}:`;
    const step = 30 * 60_000;
    const start = Date.UTC(2026, 0, 1);
    const end = start + 100 * DAY;
    // Breaches of the 60 s objective: [start, length] before the end. The first is outside 30 days.
    const windows = [
      [40 * DAY, 3 * HOUR],
      [25 * DAY, 2 * HOUR],
      [10 * DAY, 4 * HOUR],
      [3 * DAY, 2 * HOUR], // in the per-minute tier
      [6 * HOUR, 1 * HOUR], // in the raw day
    ].map(([ago, len]) => ({ from: end - (ago ?? 0), to: end - (ago ?? 0) + (len ?? 0) }));
    let clock = start;
    const lagAt = (t: number) => (windows.some((w) => t >= w.from && t < w.to) ? 140 : 5);
    const pub = startStatePublisher({
      redis: r,
      prefix,
      statuses: () => [status('db', lagAt(clock))],
      everyMs: 3_600_000, // only the explicit publishNow calls below
      historyEveryMs: step,
      now: () => clock,
    });
    try {
      for (; clock <= end; clock += step) await pub.publishNow();
      const raw = await r.zcard(rpoHistoryKey('db', prefix));
      expect(raw).toBeLessThanOrEqual(DAY / step + 1);
      for (const tier of RPO_TIERS) {
        const n = await r.zcard(rpoTierKey('db', tier, prefix));
        expect(n, tier.suffix).toBeLessThanOrEqual(tier.keepMs / tier.bucketMs + 1);
        expect(n, tier.suffix).toBeLessThanOrEqual(tier.keepMs / step + 1);
      }
      const hourly = { suffix: '1h', bucketMs: HOUR, keepMs: 90 * DAY };
      expect(RPO_TIERS).toContainEqual(hourly);
      expect(await r.zcard(rpoTierKey('db', hourly, prefix))).toBe(90 * 24 + 1);
      const report = await gatherDrillReport({
        redis: r,
        prefix,
        subject: 'db',
        apps: { db: { rpoObjectiveMs: 60_000 } },
        days: 30,
        now: end,
      });
      const inPeriod = windows.slice(1);
      expect(report.breaches).toHaveLength(inPeriod.length);
      for (const [i, w] of inPeriod.entries()) {
        const b = report.breaches[i];
        // A rolled-up breach begins at its bucket's start and ends at the next sample under.
        expect(Math.abs((b?.from ?? 0) - w.from), `breach ${i} from`).toBeLessThanOrEqual(HOUR);
        expect(b?.to ?? 0, `breach ${i} to`).toBeGreaterThanOrEqual(w.to);
        expect(b?.to ?? 0, `breach ${i} to`).toBeLessThanOrEqual(w.to + 2 * HOUR);
      }
      expect(report.samples.length).toBeLessThanOrEqual(400);
      expect(report.samples[0]?.time ?? end).toBeLessThan(end - 29 * DAY);
      expect(report.summary).toContain('4 breach(es)');
      // The reader takes raw samples where they reach and the tiers only before them.
      const read = await readRpoRange(r, prefix, 'db', end - 30 * DAY, end);
      const times = read.map((s) => s.time);
      expect([...times].sort((a, b) => a - b)).toEqual(times);
      expect(new Set(times).size).toBe(times.length);
    } finally {
      await pub.stop();
      r.disconnect();
    }
  }, 180_000);
});
