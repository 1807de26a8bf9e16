/** After a scheduled drill ends, an app's or a plan's, its drill report goes out as a `report.ready` notice. */
import { errorMessage } from '../core/errors.js';
import type { OperationEvent, OperationResult } from '../replicator/jobs/recovery-contract.js';
import { DEFAULT_REPORT_DAYS, type Notice } from './contract.js';
import type { DrillReport, ReportDrill } from './drill-report.js';
import {
  type EngineContext,
  loadOpMeta,
  type OperationMeta,
  targetsFor,
} from './engine-context.js';
import { SCHEDULER } from './identity.js';
import { planDrillOf } from './plan-drills.js';
import { reportOf } from './read-report.js';
import { planTargets } from './submit-plan.js';

/** As long as an operation's record (opmeta) is kept. */
const POSTED_KEPT_SECONDS = 30 * 86_400;

/**
 * Publishes the report when `e` ends a drill the scheduler started; nothing otherwise. An app's
 * goes to its channels; a plan's to its apps' channels and the alert channel, when the run ends
 * (done, rolled back) or first stops after a failure, whichever comes first: once per run. The
 * audit entry of the drill may not be written yet, so the drill is taken from the event too.
 */
export async function postDrillReport(
  ctx: EngineContext,
  e: OperationEvent,
): Promise<Notice | undefined> {
  const ends =
    e.job === 'plan'
      ? e.type === 'finished' || (e.type === 'step' && e.step === 'plan-waiting-decision')
      : e.type === 'finished' && e.job === 'drill';
  if (!ends) return undefined;
  const meta = await loadOpMeta(ctx, e.opId);
  if (meta?.requestedBy !== SCHEDULER || (e.job === 'plan' && meta.verb !== 'drill'))
    return undefined;
  try {
    // A plan that stops after a failure, then is retried or rolled back, ends more than once.
    const first = await ctx.redis.set(
      `${ctx.prefix}report:posted:${e.opId}`,
      '1',
      'EX',
      POSTED_KEPT_SECONDS,
      'NX',
    );
    if (first !== 'OK') return undefined;
    const post = e.job === 'plan' ? await planReport(ctx, e, meta) : await appReport(ctx, e, meta);
    return await ctx.notices.publish({
      kind: 'report.ready',
      key: `report:${e.opId}`,
      app: e.app,
      targets: post.targets,
      severity: post.failed ? 'warning' : 'info',
      summary: `Drill report of ${e.job === 'plan' ? 'plan ' : ''}${e.app}: ${post.report.summary}`,
      report: post.report,
    });
  } catch (err) {
    ctx.log.warn({ app: e.app, opId: e.opId, err: errorMessage(err) }, 'drill report not posted');
    return undefined;
  }
}

interface ReportPost {
  report: DrillReport;
  targets: string[];
  /** The drill that ended failed. */
  failed: boolean;
}

async function appReport(
  ctx: EngineContext,
  e: OperationEvent,
  meta: OperationMeta,
): Promise<ReportPost> {
  const drill = drillOf(e, ctx.now());
  const report = await reportOf(ctx, e.app, [e.app], DEFAULT_REPORT_DAYS, { also: [drill] });
  return { report, targets: targetsFor(ctx, e.app, meta.channel), failed: !drill.ok };
}

/** The plan's report as `report PLAN` draws it, the run that ended among its plan drills. */
async function planReport(
  ctx: EngineContext,
  e: OperationEvent,
  meta: OperationMeta,
): Promise<ReportPost> {
  // The groups as the run walked them (a drill: the plan's order), from the run's record.
  const d = await ctx.recovery.planRun(e.opId);
  const groups = d?.groups.map((g) => g.apps) ?? [meta.plan ?? []];
  const apps = groups.flat();
  const ended = e.type === 'finished';
  const drill = planDrillOf(
    {
      opId: e.opId,
      ok: ended && !e.error,
      result: ended ? e.result : { verb: d?.verb, run: d?.run },
      ...(e.error ? { error: e.error } : {}),
    },
    e.time || ctx.now(),
    meta.verb,
  );
  const report = await reportOf(ctx, e.app, apps, DEFAULT_REPORT_DAYS, {
    groups,
    alsoPlan: drill ? [drill] : [],
  });
  const targets = [
    ...new Set([
      ...planTargets(ctx, apps, meta.channel),
      ...targetsFor(ctx, undefined, undefined, 'alerts'),
    ]),
  ];
  return { report, targets, failed: drill?.ok === false };
}

function drillOf(e: OperationEvent, now: number): ReportDrill {
  const r = e.result as Partial<OperationResult> | undefined;
  const at = e.time || now;
  if (e.error) return { app: e.app, opId: e.opId, at, ok: false, error: e.error.message };
  const ok = r?.health?.ok !== false;
  return {
    app: e.app,
    opId: e.opId,
    at,
    ok,
    ...(r?.rto ? { rto: r.rto } : {}),
    ...(typeof r?.dataAgeSeconds === 'number' ? { dataLossSeconds: r.dataAgeSeconds } : {}),
    ...(ok ? {} : { error: r?.health?.output ?? 'failed' }),
  };
}
