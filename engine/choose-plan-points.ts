/** Chooses the recovery point of each app of a plan: each app's newest, or plan-consistent. */
import type { PointPolicy } from './plan.js';

/** A recovery point as the choice needs it: its id and when it was cut (ms since the epoch). */
export interface PointAt {
  id: number;
  timeMs: number;
}

export interface PlanPoints {
  /** The point each app recovers to. */
  chosen: Record<string, PointAt>;
  /** Plan-consistent: the instant every chosen point is at or before (the newest such). */
  instantMs?: number;
  /** Milliseconds between the oldest and the newest chosen point. */
  skewMs: number;
}

export type PlanPointsResult =
  | ({ ok: true } & PlanPoints)
  | { ok: false; reason: string; remedy: string };

/**
 * `latest`: each app's newest point. `plan-consistent`: the newest instant T at which every app has
 * a point at or before T and no app has been left behind: T is at most the oldest of the apps'
 * newest points (no app can be recovered past its newest point), each app gets its newest point at
 * or before T, and with `maxSkewMs` the chosen points must lie within that span of T (earlier
 * instants are tried, newest first). When no instant fits, it says which app stands in the way.
 */
export function choosePlanPoints(
  policy: PointPolicy,
  points: Readonly<Record<string, readonly PointAt[]>>,
): PlanPointsResult {
  const apps = Object.keys(points);
  const sorted: Record<string, PointAt[]> = {};
  for (const app of apps) {
    sorted[app] = [...(points[app] ?? [])]
      .filter((p) => Number.isFinite(p.timeMs))
      .sort((a, b) => a.timeMs - b.timeMs || a.id - b.id);
  }
  const empty = apps.filter((a) => (sorted[a] ?? []).length === 0);
  if (empty.length > 0)
    return {
      ok: false,
      reason: `no recovery point for ${empty.join(', ')}`,
      remedy: `start its agent (dr agent --app ${empty[0]}) and wait for its first point`,
    };
  if (apps.length === 0)
    return { ok: false, reason: 'the plan has no apps', remedy: 'add groups of apps to the plan' };

  const newest = (app: string): PointAt => (sorted[app] as PointAt[]).at(-1) as PointAt;
  if (policy.kind === 'latest') {
    const chosen = Object.fromEntries(apps.map((a) => [a, newest(a)]));
    return { ok: true, chosen, skewMs: spread(Object.values(chosen)) };
  }

  // No instant after the oldest newest point: that app has nothing later to recover to.
  const limitApp = apps.reduce((a, b) => (newest(b).timeMs < newest(a).timeMs ? b : a));
  const limit = newest(limitApp).timeMs;
  const candidates = [
    ...new Set(apps.flatMap((a) => (sorted[a] as PointAt[]).map((p) => p.timeMs))),
  ]
    .filter((t) => t <= limit)
    .sort((a, b) => b - a);
  let blocker: string | undefined;
  for (const t of candidates) {
    const chosen: Record<string, PointAt> = {};
    let fits = true;
    for (const app of apps) {
      const at = atOrBefore(sorted[app] as PointAt[], t);
      if (!at || (policy.maxSkewMs !== undefined && t - at.timeMs > policy.maxSkewMs)) {
        blocker ??= app;
        fits = false;
        break;
      }
      chosen[app] = at;
    }
    if (fits) return { ok: true, chosen, instantMs: t, skewMs: spread(Object.values(chosen)) };
  }
  const other = blocker ?? apps.find((a) => a !== limitApp) ?? limitApp;
  const first = (sorted[other] as PointAt[])[0] as PointAt;
  return {
    ok: false,
    reason:
      policy.maxSkewMs === undefined
        ? `no instant precedes a point of every app: ${other}'s oldest point (${iso(first.timeMs)}) is newer than ${limitApp}'s newest (${iso(limit)})`
        : `no instant has a point of every app within ${policy.maxSkewMs / 1000}s: ${other} has none close enough (newest common limit ${iso(limit)}, set by ${limitApp})`,
    remedy: `wait for a newer point of ${limitApp}, widen maxSkew, or recover with points: latest`,
  };
}

function atOrBefore(points: readonly PointAt[], t: number): PointAt | undefined {
  let found: PointAt | undefined;
  for (const p of points) {
    if (p.timeMs > t) break;
    found = p;
  }
  return found;
}

function spread(points: readonly PointAt[]): number {
  const times = points.map((p) => p.timeMs);
  return times.length === 0 ? 0 : Math.max(...times) - Math.min(...times);
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
