/** After a scheduled drill ends, its app's drill report goes to the app's channels as a `report.ready` notice. */
import { errorMessage } from '../core/errors.js';
import type { OperationEvent, OperationResult } from '../replicator/jobs/recovery-contract.js';
import { DEFAULT_REPORT_DAYS, type Notice } from './contract.js';
import type { ReportDrill } from './drill-report.js';
import { type EngineContext, loadOpMeta, targetsFor } from './engine-context.js';
import { SCHEDULER } from './identity.js';
import { reportOf } from './read-report.js';

/**
 * Publishes the report when `e` is the end of a drill the scheduler started; nothing otherwise.
 * The audit entry of the drill may not be written yet, so the drill is taken from the event too.
 */
export async function postDrillReport(
  ctx: EngineContext,
  e: OperationEvent,
): Promise<Notice | undefined> {
  if (e.type !== 'finished' || e.job !== 'drill') return undefined;
  const meta = await loadOpMeta(ctx, e.opId);
  if (meta?.requestedBy !== SCHEDULER) return undefined;
  try {
    const report = await reportOf(ctx, e.app, [e.app], DEFAULT_REPORT_DAYS, [
      drillOf(e, ctx.now()),
    ]);
    return await ctx.notices.publish({
      kind: 'report.ready',
      key: `report:${e.opId}`,
      app: e.app,
      targets: targetsFor(ctx, e.app, meta.channel),
      severity: report.drills.at(-1)?.ok === false ? 'warning' : 'info',
      summary: `Drill report of ${e.app}: ${report.summary}`,
      report,
    });
  } catch (err) {
    ctx.log.warn({ app: e.app, opId: e.opId, err: errorMessage(err) }, 'drill report not posted');
    return undefined;
  }
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
