import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectStatus, STALE_MS } from '../../cli/status-page/status-snapshot.js';
import { replicationKey } from '../../replicator/gateway/state-publisher.js';
import { redisUnavailable, startRedis, type TestRedis } from '../helpers/redis-server.js';
import { missingFeature } from '../helpers/skip.js';

const missing = redisUnavailable();
if (missing) process.stderr.write(`skipped status snapshot tests: ${missing}\n`);

describe.skipIf(missingFeature(missing, 'status-snapshot.test.ts'))(
  'what the status page makes of odd state in Redis',
  () => {
    let redis: TestRedis;
    let r: Redis;
    const prefix = `snap${Date.now()}:`;
    const now = Date.now();
    const published = (app: string, publishedAt: number, lastConsistentMsAgo: number | null) =>
      JSON.stringify({
        app,
        phase: 'continuous',
        lastPoint: null,
        lastConsistentPoint:
          lastConsistentMsAgo === null
            ? null
            : {
                id: 3,
                time: new Date(now - lastConsistentMsAgo).toISOString(),
                label: 'crash-consistent',
              },
        lagSeconds: 1,
        lastFreezeMs: null,
        publishedAt: new Date(publishedAt).toISOString(),
      });

    beforeAll(async () => {
      redis = await startRedis();
      r = new Redis(redis.url);
      await r.hset(replicationKey(prefix), {
        live: published('live', now - 1000, 2000),
        silent: published('silent', now - STALE_MS - 60_000, 90_000),
        garbled: '{"phase": truncated',
      });
    });
    afterAll(async () => {
      r?.disconnect();
      await redis?.stop();
    });

    it('measures RPO on its own clock, flags a gateway that stopped publishing, and names unreadable entries', async () => {
      const s = await collectStatus({
        redis: r,
        prefix,
        configuredApps: () => ['live', 'silent', 'never'],
        objectives: () => ({ live: 60, silent: 60 }),
        points: async (app) => {
          throw new Error(`gateway at 127.0.0.1:1 refused the connection (asked for ${app})`);
        },
        now: () => now,
      });
      const byApp = Object.fromEntries(s.apps.map((a) => [a.app, a]));
      expect(byApp.live?.stale).toBe(false);
      expect(byApp.live?.rpoSeconds).toBeCloseTo(2);
      // The published lag said 1 s a minute ago; the page says how old the newest point is now.
      expect(byApp.silent?.stale).toBe(true);
      expect(byApp.silent?.rpoSeconds).toBeCloseTo(90);
      expect(byApp.never?.phase).toBe('unprotected');
      expect(byApp.never?.publishedAt).toBeNull();
      expect(s.problems).toContain('replication state of garbled is not readable JSON');
      expect(
        s.problems.some((p) =>
          p.startsWith('recovery points of live from the gateway: gateway at 127.0.0.1:1 refused'),
        ),
      ).toBe(true);
      // Nothing is asked of the gateway for an app it has never heard of.
      expect(s.problems.some((p) => p.includes('recovery points of never'))).toBe(false);
    });
  },
);
