// The hooks of a recovery test on real Redis: a home with its gateway, `dr` env and a client per test.
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, type TestContext } from 'vitest';
import type { RecoveryClient } from '../../replicator/jobs/recovery-client.js';
import { type TestHome, testHome } from './lifeboat-home.js';
import { stopAll } from './processes.js';
import { killVolumeServers, recoveryClient, recoveryEnv } from './recovery-rig.js';
import { redisUnavailable, startRedis, type TestRedis } from './redis-server.js';
import { skipBecause } from './skip.js';

/** What each test of the suite gets, set anew before it. */
export interface RecoverySuite {
  t: TestHome;
  redis: TestRedis;
  conn: Redis;
  client: RecoveryClient;
  /** The environment of `dr` processes on the home and Redis, under a fresh key prefix. */
  env: NodeJS.ProcessEnv;
  prefix: string;
}

/**
 * Registers the suite's hooks: before each test, Redis (or a skip saying why there is none), a
 * home with its gateway, the env and a client on a fresh prefix; after it, every `dr` process,
 * volume server, Redis and the home stopped and removed, also when the test failed.
 */
export function recoverySuite(): RecoverySuite {
  const problem = redisUnavailable();
  const s = {} as Partial<RecoverySuite>;
  beforeEach(async (ctx: TestContext) => {
    if (problem) skipBecause(ctx, problem);
    s.redis = await startRedis();
    s.t = await testHome();
    await s.t.startGateway();
    const { env, prefix } = recoveryEnv(s.t.home, s.redis.url);
    Object.assign(s, { env, prefix }, recoveryClient(s.redis.url, prefix));
  });
  afterEach(async () => {
    await stopAll();
    await s.client?.close();
    s.conn?.disconnect();
    await killVolumeServers(s.t?.dir);
    await s.redis?.stop();
    await s.t?.cleanup();
    for (const k of Object.keys(s) as (keyof RecoverySuite)[]) delete s[k];
  });
  return s as RecoverySuite;
}
