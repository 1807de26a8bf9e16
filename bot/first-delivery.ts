import type { Redis } from 'ioredis';

/**
 * True the first time a delivery id is seen (across every bot process sharing the Redis), false
 * for a redelivery: Slack's retries, DingTalk's re-pushes, a replayed button press.
 */
export async function firstDelivery(
  redis: Redis,
  key: string,
  keepSeconds = 86_400,
): Promise<boolean> {
  return (await redis.set(key, '1', 'EX', keepSeconds, 'NX')) === 'OK';
}
