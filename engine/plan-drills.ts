/** A plan drill as a drill report shows it: its run split into each group's recovery and the steps between. */

/** One plan drill of a report: when it ended, its verdict and how long each part of it took. */
export interface ReportPlanDrill {
  opId: string;
  /** ms since epoch when it ended. */
  at: number;
  ok: boolean;
  /** Its parts in the order they ran: `group 1 (db)`, `after group 1` (hooks, manual steps). */
  parts: { label: string; ms: number }[];
  totalMs?: number;
  /** Apps the run skipped after a failure (the drill then passes without them). */
  skipped: string[];
  error?: string;
}

/**
 * What the report reads of a plan run's result (the plan job's `PlanResult` in
 * replicator/jobs): only these fields, each optional, so an older or newer result still draws.
 */
interface PlanResultView {
  verb?: string;
  outcome?: string;
  totalMs?: number;
  run?: {
    startedAt?: number;
    endedAt?: number;
    failure?: { error?: string };
    groups?: {
      apps?: { app?: string; state?: string }[];
      steps?: { state?: string; at?: number }[];
      upAt?: number;
    }[];
  };
}

/** The audit result of a plan operation, as the audit log keeps it (data of a `result` entry). */
export interface PlanAuditResult {
  opId?: string;
  ok?: boolean;
  result?: unknown;
  error?: { message?: string };
}

/**
 * A plan drill from its audit result, or undefined when it is not a drill's: the result says its
 * verb, else (a run that failed without a result) `verb` from the operation's record. Each group's
 * part runs from the end of what came before it (the plan's start, or the previous group's steps)
 * to when the group was up; the steps after it run until the last of them ended.
 */
export function planDrillOf(
  d: PlanAuditResult,
  at: number,
  verb?: string,
): ReportPlanDrill | undefined {
  const r = (d.result ?? {}) as PlanResultView;
  if ((r.verb ?? verb) !== 'drill') return undefined;
  const drill: ReportPlanDrill = {
    opId: d.opId ?? '?',
    at,
    ok: d.ok === true && r.outcome === 'done',
    parts: [],
    skipped: [],
  };
  const groups = r.run?.groups ?? [];
  let before = r.run?.startedAt;
  for (const [i, g] of groups.entries()) {
    const apps = (g.apps ?? []).map((a) => a.app ?? '?');
    drill.skipped.push(
      ...(g.apps ?? []).filter((a) => a.state === 'skipped').map((a) => a.app ?? '?'),
    );
    if ((g.apps ?? []).some((a) => a.state === 'failed')) drill.ok = false;
    if (g.upAt === undefined || before === undefined) break;
    drill.parts.push({ label: `group ${i + 1} (${apps.join(', ')})`, ms: g.upAt - before });
    before = g.upAt;
    const ends = (g.steps ?? []).filter((s) => s.state === 'done').map((s) => s.at ?? 0);
    const last = ends.length ? Math.max(...ends) : undefined;
    if (last !== undefined && last > before) {
      drill.parts.push({ label: `after group ${i + 1}`, ms: last - before });
      before = last;
    }
  }
  const total =
    r.totalMs ??
    (r.run?.endedAt !== undefined && r.run.startedAt !== undefined
      ? r.run.endedAt - r.run.startedAt
      : undefined);
  if (drill.ok && total !== undefined) drill.totalMs = total;
  if (!drill.ok)
    drill.error =
      d.error?.message ??
      r.run?.failure?.error ??
      (r.outcome === 'rolled-back' ? 'rolled back' : 'failed');
  return drill;
}
