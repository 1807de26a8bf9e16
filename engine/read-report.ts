/** report <app> [--days N]: the app's drill report, as data a surface draws and a one-line summary. */
import { type Command, DEFAULT_REPORT_DAYS, type Reply } from './contract.js';
import { unknownApp } from './decide.js';
import { gatherDrillReport, type ReportDrill } from './drill-report.js';
import type { EngineContext } from './engine-context.js';

/** Gathers the report of the command's app (a plan's app list later goes through the same gathering). */
export async function readReport(ctx: EngineContext, command: Command): Promise<Reply> {
  const bad = unknownApp(ctx, command.app);
  if (bad) return bad;
  const app = command.app as string;
  const report = await reportOf(ctx, app, [app], command.args.days ?? DEFAULT_REPORT_DAYS);
  return { ok: true, summary: report.summary, report, data: report };
}

/** The report of some apps of dr.yaml, named `subject`, over the last `days`. */
export function reportOf(
  ctx: EngineContext,
  subject: string,
  apps: string[],
  days: number,
  also: ReportDrill[] = [],
) {
  return gatherDrillReport({
    redis: ctx.redis,
    prefix: ctx.prefix,
    subject,
    apps: Object.fromEntries(
      apps.map((a) => [a, { rpoObjectiveMs: ctx.config.apps[a]?.rpoObjective ?? 60_000 }]),
    ),
    days,
    now: ctx.now(),
    also,
  });
}
