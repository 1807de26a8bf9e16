import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import type { StatusSnapshot } from '../../cli/status-page/status-snapshot.js';
import { dr, type TestHome, testHome, writeImage } from '../helpers/lifeboat-home.js';
import { startDr, stopAll } from '../helpers/processes.js';
import { sampleValue, scrape } from '../helpers/prometheus-text.js';
import { redisUnavailable, startRedis, type TestRedis } from '../helpers/redis-server.js';
import { skipBecause } from '../helpers/skip.js';

describe('dr serve mounts the status page and /metrics', () => {
  let t: TestHome;
  let redis: TestRedis | undefined;
  beforeEach(async () => {
    t = await testHome();
    await writeImage(`${t.dir}/a.img`, 1024 * 1024);
    const r = await dr(['--home', t.home, 'app', 'add', 'web', '--volume', `a=${t.dir}/a.img`]);
    expect(r.code, r.err).toBe(0);
  });
  afterEach(async () => {
    await stopAll();
    await redis?.stop();
    redis = undefined;
    await t.cleanup();
  });

  it('serves /, /api/status and /metrics beside /healthz', async (ctx: TestContext) => {
    const why = redisUnavailable();
    if (why) skipBecause(ctx, why);
    redis = await startRedis();
    const serve = startDr(['serve', '--listen', '127.0.0.1:0'], {
      DR_HOME: t.home,
      REDIS_URL: redis.url,
    });
    await serve.waitFor(/status page at (http:\S+)\//, 60_000);
    const base = /status page at (http:\S+)\//.exec(serve.output())?.[1] as string;
    const page = await fetch(`${base}/`, { signal: AbortSignal.timeout(15_000) });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
    const html = await page.text();
    expect(html).toContain('<h1>Lifeboat status</h1>');
    expect(html).toContain('data-app="web"');
    const api = (await (
      await fetch(`${base}/api/status`, { signal: AbortSignal.timeout(15_000) })
    ).json()) as StatusSnapshot;
    expect(api.apps.map((a) => [a.app, a.phase])).toEqual([['web', 'unprotected']]);
    const m = await scrape(`${base}/metrics`);
    expect(sampleValue(m, 'lifeboat_approvals_pending')).toBe(0);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect(await serve.stop()).toBe(0);
  });

  it('refuses a DR_STATUS_TOKEN too short, before anything starts', async () => {
    const r = await dr(['--home', t.home, 'serve', '--listen', '127.0.0.1:0'], {
      REDIS_URL: 'redis://127.0.0.1:1',
      DR_STATUS_TOKEN: 'abc',
    });
    expect(r.code).toBe(2);
    expect(r.err).toContain('DR_STATUS_TOKEN is shorter than 16 characters');
  });
});
