/** report <app|plan> [--days N]: the drill report, as data a surface draws and a one-line summary. */
import { join } from 'node:path';
import { closest } from './closest.js';
import { type Command, DEFAULT_REPORT_DAYS, type Reply } from './contract.js';
import { unknownApp } from './decide.js';
import { gatherDrillReport, type ReportDrill } from './drill-report.js';
import type { EngineContext } from './engine-context.js';
import { loadPlanDir } from './load-plan-dir.js';
import { type Plan, planApps } from './plan.js';
import type { ReportPlanDrill } from './plan-drills.js';

/**
 * Gathers the report of the command's app, or of a plan of the home's plans/ (each of its apps'
 * RPO, and its drills: the plan's own runs split by group, else its apps' drills).
 */
export async function readReport(ctx: EngineContext, command: Command): Promise<Reply> {
  const days = command.args.days ?? DEFAULT_REPORT_DAYS;
  const name = command.app;
  if (name !== undefined && ctx.config.apps[name]) {
    const report = await reportOf(ctx, name, [name], days);
    return { ok: true, summary: report.summary, report, data: report };
  }
  if (name === undefined) return unknownApp(ctx, name) as Reply;
  const plans = await readPlans(ctx);
  const plan = plans.plans.find((p) => p.name === name);
  if (!plan) return unknownSubject(ctx, name, plans);
  const groups = plan.groups.map((g) => g.apps);
  const report = await reportOf(ctx, plan.name, planApps(plan), days, { groups });
  return { ok: true, summary: report.summary, report, data: report };
}

/**
 * The report of some apps of dr.yaml, named `subject`, over the last `days`; a plan's with its
 * `groups`. `also` and `alsoPlan` are drills that ended before the audit log has them.
 */
export function reportOf(
  ctx: EngineContext,
  subject: string,
  apps: string[],
  days: number,
  more: { also?: ReportDrill[]; alsoPlan?: ReportPlanDrill[]; groups?: string[][] } = {},
) {
  return gatherDrillReport({
    redis: ctx.redis,
    prefix: ctx.prefix,
    subject,
    ...(more.groups ? { plan: { groups: more.groups } } : {}),
    apps: Object.fromEntries(
      apps.map((a) => [a, { rpoObjectiveMs: ctx.config.apps[a]?.rpoObjective ?? 60_000 }]),
    ),
    days,
    now: ctx.now(),
    also: more.also ?? [],
    alsoPlan: more.alsoPlan ?? [],
  });
}

/** The home's plans, read at each report (a plan file may change at any time), or why they cannot be. */
async function readPlans(ctx: EngineContext): Promise<{ plans: Plan[]; problem?: string }> {
  const dir = join(ctx.home, 'plans');
  const r = await loadPlanDir(dir, { knownApps: new Set(Object.keys(ctx.config.apps)) });
  if (r.set) return { plans: r.set.plans };
  const first = r.problems[0];
  return {
    plans: [],
    problem: `the plans in ${dir} have ${r.problems.length} problem(s), the first ${first?.file}:${first?.line}: ${first?.reason}; \`dr plan lint\` lists them`,
  };
}

/** Neither an app nor a plan: the nearest name of either, or both lists; or why plans cannot be read. */
function unknownSubject(
  ctx: EngineContext,
  name: string,
  plans: { plans: Plan[]; problem?: string },
): Reply {
  if (plans.problem) return { ok: false, summary: `"${name}" is not an app, and ${plans.problem}` };
  const apps = Object.keys(ctx.config.apps);
  const planNames = plans.plans.map((p) => p.name);
  const near = closest(name, [...apps, ...planNames]);
  return {
    ok: false,
    summary: near
      ? `Unknown app or plan "${name}". Did you mean ${near}?`
      : `Unknown app or plan "${name}". Apps: ${apps.join(', ') || '(none configured yet)'}; plans: ${planNames.join(', ') || '(none)'}`,
  };
}
