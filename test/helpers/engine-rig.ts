// The rig most engine tests build: a real Redis, a home with the shipped policies, a fresh key
// prefix, a connection for the test's own reads, and an engine on them. One place to stop it all.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { connectRedis } from '../../core/redis.js';
import type { Engine } from '../../engine/create-engine.js';
import { type EngineHome, engineHome, startEngine, testPrefix } from './engine-home.js';
import { startRedis, type TestRedis } from './redis-server.js';

export interface EngineRig {
  redis: TestRedis;
  h: EngineHome;
  prefix: string;
  /** The test's own connection (reads of keys, queues); closed by `stop`. */
  conn: Redis;
  engine: Engine;
  /** Closes the engine and the connection, stops Redis and removes the home; safe to call twice. */
  stop: () => Promise<void>;
}

/**
 * Starts the rig: `yaml` for dr.yaml (PEOPLE_YAML by default), `plans` as plans/NAME.yaml, the
 * engine on `now` when given, its background work started when `start` is set, and its policy
 * files watched when `watch` is.
 */
export async function startEngineRig(
  o: {
    yaml?: string;
    plans?: Record<string, string>;
    now?: () => number;
    start?: boolean;
    watch?: boolean;
  } = {},
): Promise<EngineRig> {
  const redis = await startRedis();
  const h = await engineHome(o.yaml);
  const conn = connectRedis(redis.url, 'test');
  const prefix = testPrefix();
  let engine: Engine | undefined;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await engine?.close();
    conn.disconnect();
    await redis.stop();
    await h.cleanup();
  };
  try {
    if (o.plans) {
      await mkdir(join(h.home, 'plans'));
      for (const [name, text] of Object.entries(o.plans))
        await writeFile(join(h.home, 'plans', `${name}.yaml`), text);
    }
    engine = await startEngine(h, redis.url, prefix, {
      ...(o.now ? { now: o.now } : {}),
      ...(o.watch ? { watch: true } : {}),
    });
    if (o.start) await engine.start();
    return { redis, h, prefix, conn, engine, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
