/** A plan run's one message: its card published again whenever the run or one of its apps moves. */
import { planKeys } from '../replicator/jobs/plan-contract.js';
import type { OperationEvent, OperationResult } from '../replicator/jobs/recovery-contract.js';
import type { Notice } from './contract.js';
import { lastDrillKey } from './decide.js';
import { type EngineContext, loadOpMeta } from './engine-context.js';
import { recordLastRun } from './last-runs.js';
import { planActions, planLines, planSummary } from './plan-card.js';
import { planTargets } from './submit-plan.js';

/** The plan run an operation belongs to, when a plan started it. */
export async function parentPlan(ctx: EngineContext, opId: string): Promise<string | undefined> {
  return (await ctx.redis.get(planKeys(ctx.prefix).parent(opId))) ?? undefined;
}

/**
 * An event of one of the plan's apps: its drill or failover still counts as the app's last run
 * (the facts policies read), and the plan's message shows it; its own steps are not told apart.
 */
export async function childNotice(
  ctx: EngineContext,
  planOpId: string,
  e: OperationEvent,
): Promise<Notice | undefined> {
  if (e.type === 'step') return undefined;
  if (e.type === 'finished' && e.job !== 'cleanup') {
    const r = e.result as Partial<OperationResult> | undefined;
    await recordLastRun(ctx, e.app, e.job, {
      opId: e.opId,
      at: e.time || ctx.now(),
      ok: !e.error,
      ...(e.error ? { error: e.error.message } : {}),
      ...(r?.rto ? { rtoMs: r.rto.totalMs } : {}),
    });
    if (!e.error && e.job === 'drill')
      await ctx.redis.set(lastDrillKey(ctx.prefix, e.app), String(e.time || ctx.now()));
  }
  return planNotice(ctx, planOpId);
}

/** The plan's card as it stands now, on the thread `op:<plan op>`. */
export async function planNotice(
  ctx: EngineContext,
  opId: string,
  e?: OperationEvent,
): Promise<Notice | undefined> {
  const d = await ctx.recovery.planRun(opId);
  if (!d) return undefined;
  const meta = await loadOpMeta(ctx, opId);
  const targets = planTargets(ctx, meta?.plan ?? d.groups.flatMap((g) => g.apps), meta?.channel);
  const base = {
    key: `op:${opId}`,
    app: d.plan,
    targets,
    data: { opId, job: 'plan', plan: d.plan },
    detailsInMessage: true,
  };
  const run = d.run;
  if (e?.type === 'finished' && e.error)
    return ctx.notices.publish({
      ...base,
      kind: 'operation.failed',
      severity: 'critical',
      summary: `${d.verb} of plan ${d.plan} (${opId}) could not run: ${e.error.message}`,
      details: planLines(d),
    });
  const phase = run?.phase;
  const actions = planActions(d);
  return ctx.notices.publish({
    ...base,
    kind:
      phase === 'done'
        ? 'operation.finished'
        : phase === 'rolled-back'
          ? 'operation.failed'
          : run
            ? 'operation.step'
            : 'operation.started',
    severity:
      phase === 'waiting-decision'
        ? 'critical'
        : phase === 'waiting-manual' || phase === 'rolled-back'
          ? 'warning'
          : 'info',
    summary: planSummary(d),
    details: planLines(d),
    ...(actions.length ? { actions } : {}),
  });
}
