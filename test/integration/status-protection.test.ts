// `dr status` and the published state say when an app is paused, so nobody mistakes it for a breach.
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import type { AppStatus } from '../../replicator/transport/wire-types.js';
import { dr, type TestHome, testHome, writeImage } from '../helpers/lifeboat-home.js';
import { redisUnavailable, startRedis, type TestRedis } from '../helpers/redis-server.js';
import { skipBecause } from '../helpers/skip.js';

const quiet = { DR_LOG_LEVEL: 'silent' };

describe('protection state in dr status', () => {
  let t: TestHome;
  let redis: TestRedis | undefined;

  beforeEach(async (ctx: TestContext) => {
    const why = redisUnavailable();
    if (why) skipBecause(ctx, why);
    t = await testHome();
    const image = join(t.dir, 'a.img');
    await writeImage(image, 256 * 1024, 3);
    expect((await dr(['--home', t.home, 'app', 'add', 'web', '--volume', `a=${image}`])).code).toBe(
      0,
    );
    redis = await startRedis();
  });

  afterEach(async () => {
    await redis?.stop();
    redis = undefined;
    await t?.cleanup();
  });

  it('shows protected, then paused with who paused it, then protected again', async () => {
    await t.startGateway();
    expect((await dr(['--home', t.home, 'agent', '--app', 'web', '--once'], quiet)).code).toBe(0);
    const env = { DR_HOME: t.home, REDIS_URL: redis?.url, ...quiet };
    const status = async () =>
      JSON.parse((await dr(['--home', t.home, 'status', 'web', '--json'], quiet)).out) as AppStatus;
    expect((await status()).protection).toEqual({ state: 'protected' });

    expect((await dr(['--home', t.home, 'pause', 'web'], env)).code).toBe(0);
    const paused = await status();
    expect(paused.protection).toMatchObject({ state: 'paused', by: expect.stringMatching(/\S/) });
    expect(paused.phase).toBe('paused');
    const text = await dr(['--home', t.home, 'status', 'web'], quiet);
    // The table's row says paused; the note under it says who paused it and since when.
    expect(text.out).toMatch(/^web {2}paused /m);
    expect(text.out).toMatch(/^ {2}paused: paused by \S+ since /m);

    expect((await dr(['--home', t.home, 'resume', 'web'], env)).code).toBe(0);
    expect((await status()).protection).toEqual({ state: 'protected' });
  });
});
