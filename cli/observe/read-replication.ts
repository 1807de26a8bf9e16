import type { Redis } from 'ioredis';
import {
  decodeRpoSample,
  type RpoSample,
  replicationKey,
  rpoHistoryKey,
} from '../../replicator/gateway/state-publisher.js';
import type { AppStatus } from '../../replicator/transport/wire-types.js';

/** An app's replication state as the gateway last published it. */
export type PublishedStatus = AppStatus & { publishedAt?: string };

/** Every app's published state; entries that are not JSON objects are skipped (named in `bad`). */
export async function readReplication(
  redis: Redis,
  prefix: string,
): Promise<{ statuses: PublishedStatus[]; bad: string[] }> {
  const raw = await redis.hgetall(replicationKey(prefix));
  const statuses: PublishedStatus[] = [];
  const bad: string[] = [];
  for (const [app, json] of Object.entries(raw)) {
    try {
      const s = JSON.parse(json) as PublishedStatus;
      if (typeof s === 'object' && s !== null && typeof s.phase === 'string')
        statuses.push({ ...s, app });
      else bad.push(app);
    } catch {
      bad.push(app); // a foreign or truncated value: reported, never fatal
    }
  }
  return { statuses: statuses.sort((a, b) => a.app.localeCompare(b.app)), bad };
}

/**
 * RPO now, on this clock: seconds since the newest consistent point's time. It keeps growing
 * while the gateway is silent, where the published `lagSeconds` would stand still.
 */
export function rpoNow(s: AppStatus, now: number): number | null {
  const p = s.lastConsistentPoint;
  const t = p ? Date.parse(p.unchangedAt ?? p.time) : Number.NaN;
  if (Number.isNaN(t)) return s.lagSeconds;
  return Math.max(0, (now - t) / 1000);
}

/** An app's RPO samples since `sinceMs`, oldest first. */
export async function readRpoHistory(
  redis: Redis,
  prefix: string,
  app: string,
  sinceMs: number,
): Promise<RpoSample[]> {
  const members = await redis.zrangebyscore(rpoHistoryKey(app, prefix), String(sinceMs), '+inf');
  return members.map(decodeRpoSample).filter((s): s is RpoSample => s !== undefined);
}
