import { Redis } from 'ioredis';
import { APP } from './chaos-rig.js';
import { until } from './poll-until.js';

/**
 * Whether the gateway published the app's replication state (phase continuous) to Redis at
 * `redisUrl` within `ms`: after Redis comes back it does so again by itself.
 */
export async function replicationStatePublished(redisUrl: string, ms: number): Promise<boolean> {
  const r = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  r.on('error', () => undefined); // reported by the caller as no state
  try {
    const state = await until(async () => {
      const raw = await r.hget('lifeboat:replication', APP).catch(() => null);
      const s = raw ? (JSON.parse(raw) as { phase?: string }) : undefined;
      return s?.phase === 'continuous' ? s : undefined;
    }, ms);
    return state !== undefined;
  } finally {
    r.disconnect();
  }
}
