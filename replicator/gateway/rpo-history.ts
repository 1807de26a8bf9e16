/**
 * An app's RPO history in Redis beyond the raw day: coarser tiers that keep, per bucket, the
 * highest lag seen in it, so a report of 30 (up to 90) days reads a bounded number of samples and
 * no breach is averaged away.
 */
import type { ChainableCommander, Redis } from 'ioredis';

/**
 * Where an app's RPO history is kept: a sorted set scored by sample time (ms), each member
 * `<time>:<lag seconds or ->:<phase>`, trimmed to `historyKeepMs`.
 */
export const rpoHistoryKey = (app: string, prefix = 'lifeboat:') => `${prefix}rpo:${app}`;

/** One history sample as stored; `lagSeconds` is null while the app has no consistent point. */
export interface RpoSample {
  time: number;
  lagSeconds: number | null;
  phase: string;
}

export function encodeRpoSample(s: RpoSample): string {
  return `${s.time}:${s.lagSeconds === null ? '-' : s.lagSeconds.toFixed(1)}:${s.phase}`;
}

export function decodeRpoSample(member: string): RpoSample | undefined {
  const m = /^(\d+):(-|\d+(?:\.\d+)?):([a-z-]+)$/.exec(member);
  if (!m) return undefined;
  return { time: Number(m[1]), lagSeconds: m[2] === '-' ? null : Number(m[2]), phase: m[3] ?? '' };
}

/** One rolled-up tier: a sorted set of one sample per `bucketMs`, trimmed to `keepMs`. */
export interface RpoTier {
  /** Appended to the raw key's name: `<prefix>rpo:<app>:<suffix>`. */
  suffix: string;
  bucketMs: number;
  keepMs: number;
}

/**
 * The default tiers: per minute for 7 days (10 080 samples at most), per hour for 90 days
 * (2 160). The raw key (every 10 s for 24 h) stays as it is for the status page.
 */
export const RPO_TIERS: readonly RpoTier[] = [
  { suffix: '1m', bucketMs: 60_000, keepMs: 7 * 86_400_000 },
  { suffix: '1h', bucketMs: 3_600_000, keepMs: 90 * 86_400_000 },
];

/** The sorted set of one tier of an app's history. */
export const rpoTierKey = (app: string, tier: RpoTier, prefix = 'lifeboat:') =>
  `${rpoHistoryKey(app, prefix)}:${tier.suffix}`;

/**
 * Merges one sample into its bucket atomically: the bucket's member (scored by the bucket's start)
 * keeps the highest lag seen (a missing lag `-` loses to any number) and the newest phase, then
 * everything older than the tier keeps is trimmed. Atomic, so two gateways that hand an app over
 * between them, or a restarted gateway, never lose a bucket's peak.
 */
const MERGE_SCRIPT = `
local key, t, lag, phase, oldest = KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local cur = redis.call('ZRANGEBYSCORE', key, t, t)
if #cur > 0 then
  local old = string.match(cur[1], '^%d+:([^:]+):')
  if old and old ~= '-' and (lag == '-' or tonumber(old) > tonumber(lag)) then lag = old end
  redis.call('ZREMRANGEBYSCORE', key, t, t)
end
redis.call('ZADD', key, t, t .. ':' .. lag .. ':' .. phase)
redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. oldest)
return 1
`;

/** Adds the sample `s` of `app` to every tier, inside the caller's MULTI. */
export function rollUpRpoSample(
  m: ChainableCommander,
  app: string,
  s: RpoSample,
  prefix: string,
  tiers: readonly RpoTier[] = RPO_TIERS,
): void {
  const lag = s.lagSeconds === null ? '-' : s.lagSeconds.toFixed(1);
  for (const tier of tiers) {
    const start = Math.floor(s.time / tier.bucketMs) * tier.bucketMs;
    m.eval(
      MERGE_SCRIPT,
      1,
      rpoTierKey(app, tier, prefix),
      String(start),
      lag,
      s.phase,
      String(s.time - tier.keepMs),
    );
  }
}

/**
 * An app's RPO samples in [from, to], oldest first: the raw samples where they reach, and before
 * the oldest of them the finest tier that holds the time, so a long period reads at most a few
 * thousand samples. A rolled-up sample is its bucket's start with the bucket's highest lag.
 */
export async function readRpoRange(
  redis: Redis,
  prefix: string,
  app: string,
  from: number,
  to: number,
  tiers: readonly RpoTier[] = RPO_TIERS,
): Promise<RpoSample[]> {
  const keys = [rpoHistoryKey(app, prefix), ...tiers.map((t) => rpoTierKey(app, t, prefix))];
  const parts: RpoSample[][] = [];
  let until = to; // the finer tiers already cover (until, to]
  for (const key of keys) {
    if (until < from) break;
    const members = await redis.zrangebyscore(key, String(from), String(until));
    const samples = members.map(decodeRpoSample).filter((s): s is RpoSample => s !== undefined);
    if (samples.length === 0) continue;
    parts.unshift(samples);
    until = (samples[0]?.time ?? from) - 1;
  }
  return parts.flat();
}
