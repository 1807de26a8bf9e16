import { createRequire } from 'node:module';
import type { Redis } from 'ioredis';
import { readEnv } from './env.js';

/** REDIS_URL, checked; undefined when unset. */
export function redisUrlFrom(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return readEnv('REDIS_URL', env);
}

/**
 * One Redis connection. `maxRetriesPerRequest: null` as BullMQ workers need;
 * commands wait through a reconnect instead of failing.
 */
export function connectRedis(url: string, name = 'lifeboat'): Redis {
  // Loaded on first use: most `dr` commands never talk to Redis.
  const { Redis: Client } = createRequire(import.meta.url)('ioredis') as typeof import('ioredis');
  return new Client(url, { maxRetriesPerRequest: null, connectionName: name, lazyConnect: false });
}
