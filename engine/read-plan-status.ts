/** status PLAN: the plan's apps in order, each as `status APP` shows it, and the plan's last run. */
import { replicationKey } from '../replicator/gateway/state-publisher.js';
import type { Reply } from './contract.js';
import type { EngineContext } from './engine-context.js';
import { lastPlanRunKey } from './last-runs.js';
import type { Plan } from './plan.js';
import { planSummary } from './plan-card.js';
import { type AppState, publishedStates, statusLines } from './status-lines.js';
import { lookupPlan } from './submit-plan.js';

/** What `status PLAN` says of the plan's newest run. */
export interface PlanLastRun {
  opId: string;
  /** drill, failover or failback; null when its record is gone. */
  verb: string | null;
  /** The run's phase (`running`, `done`, `rolled-back`, …), `queued`, `failed`, or `expired`. */
  phase: string;
  /** The run as its message summarises it: `Drill of plan shop (op-…): done in 41 s`. */
  summary: string;
}

/**
 * The machine form of `status PLAN` (`dr status PLAN --json`, and a chat reply's data): the plan,
 * its groups in order with each app's state, and its last run. An app without state is
 * `{app, status: null}` (chat, when the gateway has published none).
 */
export interface PlanStatus {
  plan: string;
  description: string | null;
  groups: { apps: (AppState | { app: string; status: null })[] }[];
  /** null: the plan has never run (or, with `lastRunUnknown`, it could not be read). */
  lastRun: PlanLastRun | null;
  /** Why the last run could not be read (Redis away), with the remedy. */
  lastRunUnknown?: string;
}

/**
 * The status of a plan, or the reply to a name that is neither an app nor a plan (the nearest
 * name, or both lists; the plan files' problems when they do not load).
 */
export async function readPlanStatus(ctx: EngineContext, name: string): Promise<Reply> {
  const found = await lookupPlan(ctx, name);
  if ('reply' in found) return found.reply;
  const raw = await ctx.redis.hgetall(replicationKey(ctx.prefix));
  const last = await lastPlanRun(ctx, found.plan.name);
  return planStatusReply(ctx, found.plan, publishedStates(raw), { last });
}

/**
 * The one rendering of a plan's status, for chat and `dr status PLAN`: the summary, a line per
 * app group by group (as `status APP` words it), then the last run; and the same as data.
 */
export function planStatusReply(
  ctx: Pick<EngineContext, 'now'>,
  plan: Plan,
  states: ReadonlyMap<string, AppState>,
  run: { last: PlanLastRun | undefined } | { unknown: string },
): Reply {
  const lines: string[] = [];
  let apps = 0;
  let without = 0;
  for (const [i, g] of plan.groups.entries()) {
    lines.push(...statusLines(ctx, g.apps, states).lines.map((l) => `${i + 1}. ${l}`));
    apps += g.apps.length;
    without += g.apps.filter((a) => !states.has(a)).length;
  }
  const last = 'last' in run ? (run.last ?? null) : null;
  lines.push(
    'unknown' in run
      ? `last run: unknown: ${run.unknown}`
      : `last run: ${last ? last.summary : 'none yet'}`,
  );
  const data: PlanStatus = {
    plan: plan.name,
    description: plan.description ?? null,
    groups: plan.groups.map((g) => ({
      apps: g.apps.map((app) => states.get(app) ?? { app, status: null }),
    })),
    lastRun: last,
    ...('unknown' in run ? { lastRunUnknown: run.unknown } : {}),
  };
  return {
    ok: true,
    summary: `Status of plan ${plan.name}${plan.description ? ` (${plan.description})` : ''}: ${plan.groups.length} group(s), ${apps} app(s)${without ? `, ${without} with no replication state` : ''}`,
    details: lines,
    data,
  };
}

/** The plan's newest run queued, from its record in the recovery queue (kept 30 days). */
export async function lastPlanRun(
  ctx: Pick<EngineContext, 'redis' | 'prefix' | 'recovery'>,
  plan: string,
): Promise<PlanLastRun | undefined> {
  const opId = await ctx.redis.get(lastPlanRunKey(ctx.prefix, plan));
  if (!opId) return undefined;
  const r = await ctx.recovery.planRunOutcome(opId);
  if (!r)
    return {
      opId,
      verb: null,
      phase: 'expired',
      summary: `${opId} (its record is gone: plan runs are kept 30 days)`,
    };
  const { job, failed } = r;
  if (failed)
    return {
      opId,
      verb: job.verb,
      phase: 'failed',
      summary: job.run
        ? `${planSummary(job)}; its job failed: ${failed}`
        : `${job.verb} of plan ${plan} (${opId}) could not run: ${failed}`,
    };
  return { opId, verb: job.verb, phase: job.run?.phase ?? 'queued', summary: planSummary(job) };
}
