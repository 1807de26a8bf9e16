import type { IndexEntry } from './point-index.js';
import { FRAME_COPY, FRAME_HEAD_BYTES, type SegmentLog } from './segment-log.js';

export interface GcResult {
  segmentsRemoved: number;
  segmentsCompacted: number;
  /** Bytes of deleted segment files minus the bytes the surviving records were copied into. */
  bytesReclaimed: number;
}

/** What the collector needs from an app's store; the caller holds the app's mutex. */
export interface GcTarget {
  log: SegmentLog;
  /** Segments from this number on may hold batches that recovery rebuilds: never touched. */
  firstProtectedSegment: number;
  pointIds: readonly number[];
  readDelta(pointId: number): Promise<IndexEntry[]>;
  writeDelta(pointId: number, entries: IndexEntry[]): Promise<void>;
  /**
   * Records that references of batches not yet in a point resolved to: kept, and when compaction
   * moves one, the place is updated in the object itself.
   */
  references?: () => Iterable<{ segment: number; offset: number; length: number }>;
  /** Runs `fn` with no reader between `pointEntries` and `readRecord`; deletions happen here. */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
}

/** Live bytes below half a segment trigger its compaction. */
const COMPACT_BELOW = 0.5;
/** Copied records are grouped into frames of about this size. */
const COPY_FRAME_BYTES = 8 * 1024 * 1024;

/** Records (offset order) at most this far apart are read together, dead bytes between included. */
const READ_GAP_BYTES = 64 * 1024;

/** Runs of neighbouring records, each at most COPY_FRAME_BYTES long (or one record). */
function neighbours(
  records: ReadonlyArray<[offset: number, length: number]>,
): Array<{ start: number; end: number; records: Array<[number, number]> }> {
  const runs: Array<{ start: number; end: number; records: Array<[number, number]> }> = [];
  for (const [offset, length] of records) {
    const last = runs.at(-1);
    const end = offset + length;
    if (last && offset - last.end <= READ_GAP_BYTES && end - last.start <= COPY_FRAME_BYTES) {
      last.end = end;
      last.records.push([offset, length]);
    } else runs.push({ start: offset, end, records: [[offset, length]] });
  }
  return runs;
}

/**
 * Deletes sealed segments that no kept point references and compacts those
 * mostly dead: live records are copied (verbatim, in kind-2 frames, fsync'd)
 * to the active segment, every point index that names them is rewritten
 * atomically, and only then is the old segment deleted. A crash at any step
 * leaves every index pointing at records that exist.
 */
export async function collectGarbage(target: GcTarget): Promise<GcResult> {
  const { log } = target;
  const deltas = new Map<number, IndexEntry[]>();
  /** segment → record offset → length, deduplicated across points. */
  const live = new Map<number, Map<number, number>>();
  const keep = (e: { segment: number; offset: number; length: number }) => {
    let records = live.get(e.segment);
    if (!records) {
      records = new Map();
      live.set(e.segment, records);
    }
    records.set(e.offset, e.length);
  };
  for (const id of target.pointIds) {
    const entries = await target.readDelta(id);
    deltas.set(id, entries);
    for (const e of entries) keep(e);
  }
  const references = [...(target.references?.() ?? [])];
  for (const e of references) keep(e);
  const active = log.active();
  const remove: number[] = [];
  const compact: number[] = [];
  for (const segment of log.segments()) {
    if (segment >= target.firstProtectedSegment || segment === active) continue;
    let liveBytes = 0;
    for (const length of live.get(segment)?.values() ?? []) liveBytes += length;
    if (liveBytes === 0) remove.push(segment);
    else if (liveBytes < log.size(segment) * COMPACT_BELOW) compact.push(segment);
  }

  let copiedBytes = 0;
  /** `${segment}:${offset}` → new place of the record. */
  const moved = new Map<string, { segment: number; offset: number }>();
  for (const segment of compact) {
    const records = [...(live.get(segment) ?? new Map<number, number>())].sort(
      (a, b) => a[0] - b[0],
    );
    let chunk: Array<{ offset: number; bytes: Buffer }> = [];
    let chunkBytes = 0;
    const flush = async () => {
      if (chunk.length === 0) return;
      const at = await log.append(FRAME_COPY, Buffer.concat(chunk.map((r) => r.bytes)));
      let o = at.offset + FRAME_HEAD_BYTES;
      for (const r of chunk) {
        moved.set(`${segment}:${r.offset}`, { segment: at.segment, offset: o });
        o += r.bytes.length;
      }
      copiedBytes += o - at.offset + 4; // + the frame's crc
      chunk = [];
      chunkBytes = 0;
    };
    // Neighbouring records in one read: one range GET for a run of a segment in the bucket.
    for (const run of neighbours(records)) {
      const span = await log.read(segment, run.start, run.end - run.start);
      for (const [offset, length] of run.records) {
        const at = offset - run.start;
        chunk.push({ offset, bytes: span.subarray(at, at + length) });
        chunkBytes += length;
        if (chunkBytes >= COPY_FRAME_BYTES) await flush();
      }
    }
    await flush();
  }

  if (moved.size > 0) {
    for (const [id, entries] of deltas) {
      let changed = false;
      const next = entries.map((e) => {
        const to = moved.get(`${e.segment}:${e.offset}`);
        if (!to) return e;
        changed = true;
        return { ...e, segment: to.segment, offset: to.offset };
      });
      if (changed) await target.writeDelta(id, next);
    }
    for (const e of references) {
      const to = moved.get(`${e.segment}:${e.offset}`);
      if (to) Object.assign(e, to);
    }
  }

  const gone = [...remove, ...compact];
  const freed = gone.reduce((n, s) => n + log.size(s), 0);
  await target.exclusive(async () => {
    for (const segment of gone) await log.remove(segment);
  });
  return {
    segmentsRemoved: remove.length,
    segmentsCompacted: compact.length,
    bytesReclaimed: freed - copiedBytes,
  };
}
