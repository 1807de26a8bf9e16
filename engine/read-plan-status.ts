/** status PLAN: the plan's apps in order, each as `status APP` shows it, and the plan's last run. */
import { replicationKey } from '../replicator/gateway/state-publisher.js';
import type { Reply } from './contract.js';
import type { EngineContext } from './engine-context.js';
import { lastPlanRunKey } from './last-runs.js';
import { planSummary } from './plan-card.js';
import { type StatusRow, statusLines } from './status-lines.js';
import { lookupPlan } from './submit-plan.js';

/** What `status PLAN` says of the plan's newest run. */
export interface PlanLastRun {
  opId: string;
  verb?: string;
  /** The run's phase (`running`, `done`, `rolled-back`, …), `queued`, `failed`, or `expired`. */
  state: string;
  line: string;
}

/**
 * The status of a plan, or the reply to a name that is neither an app nor a plan (the nearest
 * name, or both lists; the plan files' problems when they do not load).
 */
export async function readPlanStatus(ctx: EngineContext, name: string): Promise<Reply> {
  const found = await lookupPlan(ctx, name);
  if ('reply' in found) return found.reply;
  const { plan } = found;
  const raw = await ctx.redis.hgetall(replicationKey(ctx.prefix));
  const lines: string[] = [];
  const rows: StatusRow[] = [];
  for (const [i, g] of plan.groups.entries()) {
    const s = statusLines(ctx, g.apps, raw);
    rows.push(...s.rows);
    lines.push(...s.lines.map((l) => `${i + 1}. ${l}`));
  }
  const last = await lastPlanRun(ctx, plan.name);
  lines.push(last ? `last run: ${last.line}` : 'last run: none yet');
  return {
    ok: true,
    summary: `Status of plan ${plan.name}${plan.description ? ` (${plan.description})` : ''}: ${plan.groups.length} group(s), ${rows.length === 0 ? 'no app has published state' : `${rows.length} app(s) with published state`}`,
    details: lines,
    data: {
      plan: plan.name,
      groups: plan.groups.map((g) => g.apps),
      apps: rows,
      lastRun: last ?? null,
    },
  };
}

/** The plan's newest run queued, from its record in the recovery queue (kept 30 days). */
export async function lastPlanRun(
  ctx: EngineContext,
  plan: string,
): Promise<PlanLastRun | undefined> {
  const opId = await ctx.redis.get(lastPlanRunKey(ctx.prefix, plan));
  if (!opId) return undefined;
  const r = await ctx.recovery.planRunOutcome(opId);
  if (!r)
    return {
      opId,
      state: 'expired',
      line: `${opId} (its record is gone: plan runs are kept 30 days)`,
    };
  const { job, failed } = r;
  if (failed)
    return {
      opId,
      verb: job.verb,
      state: 'failed',
      line: job.run
        ? `${planSummary(job)}; its job failed: ${failed}`
        : `${job.verb} of plan ${plan} (${opId}) could not run: ${failed}`,
    };
  return { opId, verb: job.verb, state: job.run?.phase ?? 'queued', line: planSummary(job) };
}
