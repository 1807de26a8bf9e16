/** The newest drill, failover and failback of each app, with verdict and RTO, as approval cards show them. */
import type { EngineContext } from './engine-context.js';

export type RunJob = 'drill' | 'failover' | 'failback';

/** How one operation of an app ended. */
export interface LastRun {
  opId: string;
  /** ms since epoch when it ended. */
  at: number;
  ok: boolean;
  /** Drill and failover: the measured RTO; failback: the downtime. Absent when it failed. */
  rtoMs?: number;
  /** The failure, one line. */
  error?: string;
}

/** `lastrun:<app>`: a hash of job → JSON `LastRun`. */
export const lastRunKey = (prefix: string, app: string) => `${prefix}lastrun:${app}`;

const JOBS: readonly string[] = ['drill', 'failover', 'failback'];

/** Records how an operation ended; other jobs (verify, cleanup) are not runs a card shows. */
export async function recordLastRun(
  ctx: Pick<EngineContext, 'redis' | 'prefix'>,
  app: string,
  job: string,
  run: LastRun,
): Promise<void> {
  if (!JOBS.includes(job)) return;
  await ctx.redis.hset(lastRunKey(ctx.prefix, app), job, JSON.stringify(run));
}

/** The newest run of each job of an app; a field that is not ours to read is left out. */
export async function lastRuns(
  ctx: Pick<EngineContext, 'redis' | 'prefix'>,
  app: string,
): Promise<Partial<Record<RunJob, LastRun>>> {
  const raw = await ctx.redis.hgetall(lastRunKey(ctx.prefix, app));
  const out: Partial<Record<RunJob, LastRun>> = {};
  for (const job of JOBS) {
    const text = raw[job];
    if (text === undefined) continue;
    try {
      const r = JSON.parse(text) as LastRun;
      if (typeof r.at === 'number' && typeof r.ok === 'boolean') out[job as RunJob] = r;
    } catch {
      // Written by something else under our prefix: the card says "no run recorded" instead.
    }
  }
  return out;
}

/** `lastplanrun:<plan>`: the op id of the plan's newest run queued (its record is the plan job). */
export const lastPlanRunKey = (prefix: string, plan: string) => `${prefix}lastplanrun:${plan}`;
