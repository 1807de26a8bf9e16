/**
 * Blocks an agent sent as references (the same content as a block the gateway already holds for
 * the volume): each is resolved, once, to the stored record of the block it repeats, so the
 * point's index points there and every reader, retention and GC sees an ordinary entry.
 */
import { DrError, errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { type BatchEntry, type DecodedBatch, decodeBatch } from '../transport/batch-codec.js';
import type { Catalog } from './catalog.js';
import type { PendingBatches } from './pending-batches.js';
import type { IndexEntry } from './point-index.js';
import { FRAME_BATCH, type LogPosition, type SegmentLog } from './segment-log.js';

/** Where a record lives and the batch it arrived in: what a resolved reference copies. */
export interface RecordPlace {
  segment: number;
  offset: number;
  length: number;
  recordSeq: number;
}

/** How each entry of one batch is stored: its own record, one of the batch's own, or one held. */
export type Resolution = { own: true } | { local: number } | { held: RecordPlace };

/** The stored record of `block` whose plaintext has this MAC, or undefined when none is held. */
export type FindRecord = (volumeId: number, block: number, mac: Buffer) => IndexEntry | undefined;

export function placeOf(e: IndexEntry): RecordPlace {
  return {
    segment: e.segment,
    offset: e.offset,
    length: e.length,
    recordSeq: e.recordSeq ?? e.seq,
  };
}

/**
 * Resolves the references of one batch in order: to an earlier record of the same batch for the
 * source block, else to `find`'s. Returns each entry's resolution, or the index of the first
 * reference whose source the gateway does not hold with that MAC.
 */
export function resolveReferences(
  entries: readonly BatchEntry[],
  find: FindRecord,
): { resolutions: Resolution[] } | { refused: number } {
  const resolutions: Resolution[] = [];
  /** (volume, block) → the latest entry of this batch for it. */
  const latest = new Map<number, number>();
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i] as BatchEntry;
    if (e.source === undefined) resolutions.push({ own: true });
    else {
      const j = latest.get(e.volumeId * 2 ** 32 + e.source);
      const local = j === undefined ? undefined : (entries[j] as BatchEntry);
      if (local?.mac.equals(e.mac)) {
        const r = resolutions[j as number] as Resolution;
        resolutions.push('own' in r ? { local: j as number } : r);
      } else {
        const held = find(e.volumeId, e.source, e.mac);
        if (!held) return { refused: i };
        resolutions.push({ held: placeOf(held) });
      }
    }
    latest.set(e.volumeId * 2 ** 32 + e.block, i);
  }
  return { resolutions };
}

/** The refusal of a batch whose reference names a block the gateway does not hold with that content. */
export function referenceRefused(app: string, seq: number, e: BatchEntry): DrError {
  return new DrError(
    `batch ${seq} of ${app} sends block ${e.block} of volume #${e.volumeId} as a repeat of block ${e.source}, which the gateway does not hold with that content`,
    {
      code: 'reference_refused',
      subject: `${app} batch ${seq}`,
      remedy: "the agent sends the batch again with the block's data; nothing was stored",
    },
  );
}

/** Binary search of a view sorted by (volume, block). */
export function findInView(
  view: readonly IndexEntry[],
  volumeId: number,
  block: number,
): IndexEntry | undefined {
  let lo = 0;
  let hi = view.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const e = view[mid] as IndexEntry;
    const d = e.volumeId - volumeId || e.block - block;
    if (d === 0) return e;
    if (d < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return undefined;
}

/** Finds a record by block and MAC among pending batches, then in the latest point's view. */
export function recordFinder(
  pending: Pick<PendingBatches, 'find'>,
  view: readonly IndexEntry[],
): FindRecord {
  return (volumeId, block, mac) => {
    const held = pending.find(volumeId, block, mac);
    if (held) return held;
    const e = findInView(view, volumeId, block);
    return e?.mac.equals(mac) ? e : undefined;
  };
}

/**
 * Finds the batches after the last point in the segment log again at start and adopts them as
 * pending, resolving their references in order as they were when they arrived. A reference that
 * no longer resolves (it cannot unless files were lost) is left out with an error in the log:
 * the point it goes into then fails its digest check on restore instead of restoring a wrong block.
 */
export async function recoverPending(
  log: SegmentLog,
  catalog: Pick<Catalog, 'tail' | 'committedSeq'>,
  {
    finder,
    adopt,
    log: logger,
  }: {
    finder: () => Promise<FindRecord>;
    adopt: (at: LogPosition, decoded: DecodedBatch, resolutions?: Resolution[]) => void;
    log: Logger;
  },
): Promise<void> {
  const found = new Map<number, { at: LogPosition; decoded: DecodedBatch }>();
  await log.recover(catalog.tail, (frame) => {
    if (frame.kind !== FRAME_BATCH) return undefined;
    let decoded: DecodedBatch;
    try {
      decoded = decodeBatch(frame.payload);
    } catch (err) {
      return errorMessage(err);
    }
    if (decoded.seq > catalog.committedSeq && !found.has(decoded.seq))
      found.set(decoded.seq, { at: { segment: frame.segment, offset: frame.start }, decoded });
    return undefined;
  });
  for (const { at, decoded } of [...found.values()].sort((a, b) => a.decoded.seq - b.decoded.seq)) {
    let d = decoded;
    while (d.entries.some((e) => e.source !== undefined)) {
      const r = resolveReferences(d.entries, await finder());
      if ('resolutions' in r) {
        adopt(at, d, r.resolutions);
        break;
      }
      const bad = d.entries[r.refused];
      logger.error(
        { seq: d.seq, volumeId: bad?.volumeId, block: bad?.block, source: bad?.source },
        'a pending reference no longer resolves; the block is left out of the batch',
      );
      d = { ...d, entries: d.entries.filter((_, i) => i !== r.refused) };
    }
    if (!d.entries.some((e) => e.source !== undefined)) adopt(at, d);
  }
}

/**
 * The records that references of batches being written resolved to, from their resolution until
 * the batch is adopted as pending (or fails): GC keeps them and moves them in place.
 */
export class ReferencesInFlight {
  readonly #places = new Set<RecordPlace>();

  /** Resolves a batch's references (undefined: it has none), or throws `reference_refused`. */
  async resolve(
    app: string,
    decoded: DecodedBatch,
    finder: () => Promise<FindRecord>,
  ): Promise<Resolution[] | undefined> {
    if (!decoded.entries.some((e) => e.source !== undefined)) return undefined;
    const r = resolveReferences(decoded.entries, await finder());
    if ('refused' in r)
      throw referenceRefused(app, decoded.seq, decoded.entries[r.refused] as BatchEntry);
    for (const x of r.resolutions) if ('held' in x) this.#places.add(x.held);
    return r.resolutions;
  }

  release(resolutions: readonly Resolution[] | undefined): void {
    for (const x of resolutions ?? []) if ('held' in x) this.#places.delete(x.held);
  }

  places(): RecordPlace[] {
    return [...this.#places];
  }
}
