import { createRequire } from 'node:module';
import type { Redis } from 'ioredis';
import { DrError } from './errors.js';

/** REDIS_URL, checked; undefined when unset. */
export function redisUrlFrom(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const url = env.REDIS_URL;
  if (url === undefined || url === '') return undefined;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    parsed = new URL('invalid:');
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new DrError('REDIS_URL is not a redis:// URL', {
      code: 'config_invalid',
      subject: 'REDIS_URL',
      remedy: 'set it like redis://127.0.0.1:6379, or unset it',
    });
  }
  return url;
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
