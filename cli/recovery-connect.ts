import { userInfo } from 'node:os';
import type { Redis } from 'ioredis';
import { readEnv } from '../core/env.js';
import { DrError, errorMessage } from '../core/errors.js';
import { connectRedis, redisUrlFrom } from '../core/redis.js';

/** REDIS_URL, required: recovery runs through the queue. */
export function requireRedisUrl(env: NodeJS.ProcessEnv): string {
  const url = redisUrlFrom(env);
  if (url === undefined) {
    throw new DrError('REDIS_URL is not set; recovery jobs go through Redis', {
      code: 'config_missing',
      subject: 'REDIS_URL',
      remedy: 'set REDIS_URL=redis://127.0.0.1:6379, or start everything with dr up',
    });
  }
  return url;
}

/** Key prefix in Redis (DR_REDIS_PREFIX), `lifeboat:` by default. */
export function redisPrefix(env: NodeJS.ProcessEnv): string {
  return readEnv('DR_REDIS_PREFIX', env);
}

/** A connection that answered PING, or a clear error within `timeoutMs`. */
export async function openRedis(
  env: NodeJS.ProcessEnv,
  name: string,
  timeoutMs = 5000,
): Promise<Redis> {
  const url = requireRedisUrl(env);
  const redis = connectRedis(url, name);
  let lastError = '';
  redis.on('error', (err: Error) => {
    lastError = err.message; // reported below if PING does not answer
  });
  const timer = new Promise<never>((_, reject) =>
    setTimeout(() => reject(new Error('no answer')), timeoutMs).unref(),
  );
  try {
    await Promise.race([redis.ping(), timer]);
    return redis;
  } catch (err) {
    redis.disconnect();
    const host = new URL(url).host;
    throw new DrError(`cannot reach Redis at ${host}: ${lastError || errorMessage(err)}`, {
      code: 'redis_unreachable',
      subject: 'REDIS_URL',
      remedy: 'start redis-server (or `dr up`), or point REDIS_URL at a running one',
    });
  }
}

/** Who asked, for job data and conflict messages: the local user. */
export function localRequester(): string {
  return `local:${userInfo().username}`;
}
