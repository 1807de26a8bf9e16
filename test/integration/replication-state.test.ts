import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import { resolveAgentSettings } from '../../replicator/agent/agent-settings.js';
import { ReplicationAgent } from '../../replicator/agent/replication-agent.js';
import { dr, kek, type TestHome, testHome, writeImage } from '../helpers/lifeboat-home.js';
import { startDr, stopAll } from '../helpers/processes.js';
import { redisUnavailable, startRedis, type TestRedis } from '../helpers/redis-server.js';
import { skipBecause } from '../helpers/skip.js';

describe('replication state: status, clock offset, Redis', () => {
  let t: TestHome;
  let redis: TestRedis | undefined;
  beforeEach(async () => {
    t = await testHome();
    const a = join(t.dir, 'a.img');
    await writeImage(a, 2 * 1024 * 1024, 7);
    await dr(['--home', t.home, 'app', 'add', 'web', '--volume', `a=${a}`]);
  });
  afterEach(async () => {
    await stopAll();
    await redis?.stop();
    redis = undefined;
    await t.cleanup();
  });

  it('puts points on the gateway clock even when the agent clock is an hour off', async () => {
    await t.startGateway();
    const config = await t.config();
    const hour = 3_600_000;
    const agent = new ReplicationAgent({
      settings: resolveAgentSettings(config, 'web', { tracker: 'scan' }),
      client: await t.client(),
      kek: await kek(t.home),
      now: () => Date.now() + hour,
    });
    const report = await agent.run({ once: true });
    const pointTime = Date.parse(report?.point.time ?? '');
    expect(Math.abs(pointTime - Date.now())).toBeLessThan(60_000);
  });

  it('publishes each app’s replication state to Redis when REDIS_URL is set', async (ctx: TestContext) => {
    const why = redisUnavailable();
    if (why) skipBecause(ctx, why);
    redis = await startRedis();
    const env = { DR_HOME: t.home, REDIS_URL: redis.url };
    const gateway = startDr(['gateway'], env);
    await gateway.waitFor(/publishing replication state to Redis/);
    const agent = startDr(
      ['agent', '--app', 'web', '--tracker', 'scan', '--interval', '300ms'],
      env,
    );
    await agent.waitFor(/recovery point committed|no change since the last point/);
    const r = new Redis(redis.url);
    try {
      let state: {
        phase?: string;
        lastPoint?: { id: number };
        trackers?: Record<string, { kind: string }>;
      } = {};
      const until = Date.now() + 15_000;
      while (Date.now() < until) {
        const raw = await r.hget('lifeboat:replication', 'web');
        state = raw ? JSON.parse(raw) : {};
        if (state.phase === 'continuous' && state.trackers?.a) break;
        await sleep(100);
      }
      expect(state.phase).toBe('continuous');
      expect(state.lastPoint?.id).toBeGreaterThanOrEqual(1);
      expect(state.trackers?.a?.kind).toBe('scan');
    } finally {
      r.disconnect();
    }
    await agent.stop();
    await gateway.stop();
  });

  it('refuses a REDIS_URL that is not a redis:// URL, naming it', async () => {
    const r = await dr(['--home', t.home, 'gateway'], { REDIS_URL: 'http://127.0.0.1:6379' });
    expect(r.code).toBe(2);
    expect(r.err).toContain('REDIS_URL is not a redis:// URL');
    expect(r.err).toContain('redis://127.0.0.1:6379');
  });
});
