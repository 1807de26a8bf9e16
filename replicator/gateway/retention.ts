import type { PointInfo, PointVolumeInfo, VolumeMeta } from './catalog.js';
import { type IndexEntry, overlayEntries } from './point-index.js';

/** How long recovery points are kept, each tier in milliseconds of age. */
export interface RetentionRules {
  /** Every point younger than this is kept. */
  all: number;
  /** Younger than this, the newest point of each UTC hour is kept. */
  hourly: number;
  /** Younger than this, the newest point of each UTC day is kept; older points go. */
  daily: number;
}

const HOUR = 3_600_000;
const DAY = 86_400_000;

/**
 * The ids of the points the rules drop at `now`. "Newest of its hour (day)"
 * is judged among all points of that hour (day), so a bucket is represented
 * by one point once its newest one ages into the tier. The newest point
 * overall is always kept.
 */
export function planRetention(
  points: ReadonlyArray<{ id: number; time: string }>,
  now: Date,
  rules: RetentionRules,
): number[] {
  const byAge = points
    .map((p) => ({ id: p.id, t: Date.parse(p.time) }))
    .sort((a, b) => b.t - a.t || b.id - a.id);
  const newest = byAge[0];
  const newestOfHour = new Map<number, number>();
  const newestOfDay = new Map<number, number>();
  for (const p of byAge) {
    const hour = Math.floor(p.t / HOUR);
    const day = Math.floor(p.t / DAY);
    if (!newestOfHour.has(hour)) newestOfHour.set(hour, p.id);
    if (!newestOfDay.has(day)) newestOfDay.set(day, p.id);
  }
  const drop: number[] = [];
  for (const p of byAge) {
    const age = now.getTime() - p.t;
    const keep =
      p.id === newest?.id ||
      age < rules.all ||
      (age < rules.hourly && newestOfHour.get(Math.floor(p.t / HOUR)) === p.id) ||
      (age < rules.daily && newestOfDay.get(Math.floor(p.t / DAY)) === p.id);
    if (!keep) drop.push(p.id);
  }
  return drop.sort((a, b) => a - b);
}

/** What dropping points needs from an app's store; the caller holds the app's mutex. */
export interface RetentionTarget {
  /** Oldest first. */
  points: readonly PointInfo[];
  volumes: readonly VolumeMeta[];
  readDelta(pointId: number): Promise<IndexEntry[]>;
  /** Must replace the file atomically. */
  writeDelta(pointId: number, entries: IndexEntry[]): Promise<void>;
  /** The plaintext length of a stored record, from its header. */
  plainLen(entry: IndexEntry): Promise<number>;
}

/**
 * First step of dropping points: each run of dropped points is merged into
 * the kept point after it (the newest point is always kept, so there is
 * one), whose index is rewritten with the entries it does not override.
 * Restoring any point gives the same blocks before and after this step,
 * with or without the dropped points in the catalog; the caller then writes
 * the catalog and deletes the dropped indexes. Returns the rewritten points'
 * new infos: their seq range and counts now cover the dropped ones.
 */
export async function mergeDroppedPoints(
  target: RetentionTarget,
  drop: ReadonlySet<number>,
): Promise<Map<number, PointInfo>> {
  const updated = new Map<number, PointInfo>();
  let run: PointInfo[] = [];
  for (const next of target.points) {
    if (drop.has(next.id)) {
      run.push(next);
      continue;
    }
    if (run.length === 0) continue;
    let merged: IndexEntry[] = [];
    for (const p of run) merged = overlayEntries(merged, await target.readDelta(p.id));
    const own = await target.readDelta(next.id);
    const kept = new Set(own);
    merged = overlayEntries(merged, own);
    await target.writeDelta(next.id, merged);
    const volumes: Record<string, PointVolumeInfo> = {};
    for (const [name, info] of Object.entries(next.volumes)) {
      const volumeId = target.volumes.find((v) => v.name === name)?.id;
      let blocksChanged = 0;
      let bytesChanged = info.bytesChanged;
      for (const e of merged) {
        if (e.volumeId !== volumeId) continue;
        blocksChanged++;
        if (!kept.has(e)) bytesChanged += await target.plainLen(e);
      }
      volumes[name] = { ...info, blocksChanged, bytesChanged };
    }
    updated.set(next.id, { ...next, seqFrom: run[0]?.seqFrom ?? next.seqFrom, volumes });
    run = [];
  }
  return updated;
}
