/** A drill report's data for a list of apps over a period: RPO samples, breaches, drills and a one-line summary. */
import type { Redis } from 'ioredis';
import { formatDuration } from '../core/units.js';
import { readRpoRange } from '../replicator/gateway/rpo-history.js';
import type { OperationResult } from '../replicator/jobs/recovery-contract.js';
import type { AuditEntry } from './audit-log.js';
import { controlKeys } from './contract.js';
import { opMetaKey } from './engine-context.js';
import { type PlanAuditResult, planDrillOf, type ReportPlanDrill } from './plan-drills.js';

/** Samples per app the chart draws: buckets keep their highest lag, so no breach is smoothed away. */
const SAMPLES_PER_APP = 400;
/** Audit entries read at most for one report. */
const AUDIT_SCAN = 20_000;

/** One RPO sample of the chart; null while the app had no consistent point. */
export interface ReportSample {
  app: string;
  time: number;
  lagSeconds: number | null;
}

/** A stretch where an app's RPO was over its objective. */
export interface Breach {
  app: string;
  from: number;
  to: number;
}

/** One drill as the report shows it. */
export interface ReportDrill {
  app: string;
  opId: string;
  /** ms since epoch when it ended. */
  at: number;
  ok: boolean;
  /** Split by step; absent when the drill failed. */
  rto?: { materialiseMs: number; launchMs: number; healthyMs: number; totalMs: number };
  /** The data-loss window: how old the recovered point's data was when the drill started. */
  dataLossSeconds?: number;
  error?: string;
}

export interface DrillReport {
  /** What the report is about: an app's name or a plan's. */
  subject: string;
  /** A plan's report: its groups in order (each a list of apps). */
  plan?: { groups: string[][] };
  apps: string[];
  from: number;
  to: number;
  days: number;
  /** Each app's RPO objective, in seconds. */
  objectives: Record<string, number>;
  samples: ReportSample[];
  breaches: Breach[];
  drills: ReportDrill[];
  /** A plan's report: the plan's own drills, split by group and step (drawn instead of `drills` when any). */
  planDrills?: ReportPlanDrill[];
  /** One line a person reads without the picture. */
  summary: string;
}

export interface GatherOptions {
  redis: Redis;
  prefix: string;
  subject: string;
  /** A plan's report: its groups in order; its drills are read from the audit log too. */
  plan?: { groups: string[][] };
  /** The apps and their RPO objectives in ms (from dr.yaml). */
  apps: Record<string, { rpoObjectiveMs: number }>;
  days: number;
  now: number;
  /** Drills known from elsewhere (a drill's end not audited yet): added when the log lacks them. */
  also?: ReportDrill[];
  /** The same for a plan's own drills (a run that stopped after a failure is not audited yet). */
  alsoPlan?: ReportPlanDrill[];
}

/** Reads RPO history and drill results from Redis for the apps over the last `days`. */
export async function gatherDrillReport(o: GatherOptions): Promise<DrillReport> {
  const to = o.now;
  const from = to - o.days * 86_400_000;
  const names = Object.keys(o.apps).sort();
  const objectives: Record<string, number> = {};
  const samples: ReportSample[] = [];
  const breaches: Breach[] = [];
  const overShare: number[] = [];
  for (const app of names) {
    const objective = (o.apps[app]?.rpoObjectiveMs ?? 60_000) / 1000;
    objectives[app] = objective;
    const decoded = await readRpoRange(o.redis, o.prefix, app, from, to);
    const series = decoded.map((s) => ({ app, time: s.time, lagSeconds: s.lagSeconds }));
    const found = breachesOf(series, objective);
    breaches.push(...found);
    if (series.length > 1) {
      const span = (series.at(-1)?.time ?? 0) - (series[0]?.time ?? 0);
      const over = found.reduce((n, b) => n + (b.to - b.from), 0);
      if (span > 0) overShare.push(over / span);
    }
    samples.push(...downsample(series, from, to, SAMPLES_PER_APP));
  }
  const { drills, planDrills } = await readDrills(o.redis, o.prefix, new Set(names), from, to, {
    plan: o.plan ? o.subject : undefined,
  });
  for (const d of o.also ?? []) if (!drills.some((x) => x.opId === d.opId)) drills.push(d);
  drills.sort((a, b) => a.at - b.at);
  for (const d of o.alsoPlan ?? [])
    if (!planDrills.some((x) => x.opId === d.opId)) planDrills.push(d);
  planDrills.sort((a, b) => a.at - b.at);
  const report: DrillReport = {
    subject: o.subject,
    apps: names,
    from,
    to,
    days: o.days,
    objectives,
    samples,
    breaches,
    drills,
    ...(o.plan ? { plan: o.plan, planDrills } : {}),
    summary: '',
  };
  report.summary = summaryLine(report, overShare.length ? Math.max(...overShare) : undefined);
  return report;
}

/** Runs of samples over the objective, each from its first sample over to the next sample under. */
export function breachesOf(series: ReportSample[], objectiveSeconds: number): Breach[] {
  const out: Breach[] = [];
  let start: number | undefined;
  let last = 0;
  for (const s of series) {
    const over = s.lagSeconds !== null && s.lagSeconds > objectiveSeconds;
    if (over && start === undefined) start = s.time;
    if (!over && start !== undefined) {
      out.push({ app: s.app, from: start, to: s.time });
      start = undefined;
    }
    last = s.time;
  }
  const app = series[0]?.app;
  if (start !== undefined && app !== undefined) out.push({ app, from: start, to: last });
  return out;
}

/** At most `n` samples: per time bucket the highest lag (a gap stays a gap when the bucket had only gaps). */
export function downsample(
  series: ReportSample[],
  from: number,
  to: number,
  n: number,
): ReportSample[] {
  if (series.length <= n) return series;
  const width = Math.max(1, (to - from) / n);
  const buckets = new Map<number, ReportSample>();
  for (const s of series) {
    // A sample at `to` itself would open an (n+1)th bucket: it joins the last one.
    const b = Math.min(n - 1, Math.floor((s.time - from) / width));
    const cur = buckets.get(b);
    if (
      !cur ||
      (s.lagSeconds !== null && (cur.lagSeconds === null || s.lagSeconds > cur.lagSeconds))
    )
      buckets.set(b, s);
  }
  return [...buckets.values()].sort((a, b) => a.time - b.time);
}

/**
 * The drills of the apps that ended in [from, to], oldest first, from the audit log's results;
 * with `plan`, that plan's own drills too (its runs audited under the plan's name).
 */
async function readDrills(
  redis: Redis,
  prefix: string,
  apps: Set<string>,
  from: number,
  to: number,
  { plan }: { plan?: string | undefined },
): Promise<{ drills: ReportDrill[]; planDrills: ReportPlanDrill[] }> {
  const entries = await redis.xrange(
    controlKeys(prefix).audit,
    String(from),
    String(to),
    'COUNT',
    AUDIT_SCAN,
  );
  const out: ReportDrill[] = [];
  const planDrills: ReportPlanDrill[] = [];
  for (const [, fields] of entries) {
    const text = fields[fields.indexOf('entry') + 1];
    if (text === undefined) continue;
    let e: AuditEntry;
    try {
      e = JSON.parse(text) as AuditEntry;
    } catch {
      continue; // not an entry the audit log wrote: nothing of a drill in it
    }
    if (e.type !== 'result') continue;
    const d = e.data as {
      app?: string;
      job?: string;
      opId?: string;
      ok?: boolean;
      result?: Partial<OperationResult>;
      error?: { message?: string };
    } | null;
    if (plan !== undefined && d?.job === 'plan' && d.app === plan) {
      const verb = d.result ? undefined : await verbOf(redis, prefix, d.opId);
      const pd = planDrillOf(d as PlanAuditResult, e.time, verb);
      if (pd) planDrills.push(pd);
      continue;
    }
    if (d?.job !== 'drill' || !d.app || !apps.has(d.app)) continue;
    const r = d.result;
    const drill: ReportDrill = { app: d.app, opId: d.opId ?? '?', at: e.time, ok: d.ok === true };
    if (drill.ok && r?.rto) drill.rto = r.rto;
    if (drill.ok && typeof r?.dataAgeSeconds === 'number') drill.dataLossSeconds = r.dataAgeSeconds;
    if (r?.health && !r.health.ok) drill.ok = false;
    if (!drill.ok) drill.error = d.error?.message ?? r?.health?.output ?? 'failed';
    out.push(drill);
  }
  return { drills: out, planDrills };
}

/** The verb of an operation from its record (kept 30 days), for a result that does not say it. */
async function verbOf(redis: Redis, prefix: string, opId: string | undefined) {
  if (!opId) return undefined;
  const raw = await redis.get(opMetaKey(prefix, opId));
  try {
    return raw === null ? undefined : (JSON.parse(raw) as { verb?: string }).verb;
  } catch {
    return undefined; // an unreadable record: the run is not counted as a drill
  }
}

/** `web, last 30 d: 4 drills, 3 passed; RTO median 2m (last 1m 50s); data loss at most 45s; RPO over objective 2% of the time`. */
export function summaryLine(r: DrillReport, overShare: number | undefined): string {
  // A plan with drills of its own is judged by them; else by its apps' drills.
  const own = r.planDrills?.length ? r.planDrills : undefined;
  const runs = own
    ? own.map((d) => ({ ok: d.ok, totalMs: d.totalMs }))
    : r.drills.map((d) => ({ ok: d.ok, totalMs: d.rto?.totalMs }));
  const passed = runs.filter((d) => d.ok);
  const parts = [`${r.subject}, last ${r.days} d`];
  if (runs.length === 0) parts.push(r.plan ? 'no drills of the plan or its apps' : 'no drills');
  else {
    parts.push(`${runs.length} ${own ? 'plan drill(s)' : 'drill(s)'}, ${passed.length} passed`);
    const rtos = passed.map((d) => d.totalMs).filter((v) => v !== undefined);
    if (rtos.length) {
      const sorted = [...rtos].sort((a, b) => a - b);
      const median = sorted[Math.floor((sorted.length - 1) / 2)] ?? 0;
      parts.push(`RTO median ${formatDuration(median)} (last ${formatDuration(rtos.at(-1) ?? 0)})`);
    }
    const losses = r.drills
      .filter((d) => d.ok)
      .map((d) => d.dataLossSeconds)
      .filter((v) => v !== undefined);
    if (losses.length)
      parts.push(`data loss at most ${formatDuration(Math.max(...losses) * 1000)}`);
    const last = runs.at(-1);
    if (last && !last.ok) parts.push(`the last ${own ? 'plan drill' : 'drill'} FAILED`);
  }
  if (r.samples.length === 0) parts.push('no RPO history in the period');
  else if (overShare !== undefined)
    parts.push(
      r.breaches.length
        ? `RPO over objective ${(overShare * 100).toFixed(overShare < 0.1 ? 1 : 0)}% of the time (${r.breaches.length} breach(es))`
        : 'RPO within objective throughout',
    );
  return parts.join('; ');
}
