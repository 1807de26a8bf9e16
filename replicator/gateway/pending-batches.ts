import { MAC_BYTES } from '../crypto/volume-key.js';
import type { DecodedBatch } from '../transport/batch-codec.js';
import type { Resolution } from './block-references.js';
import { deltaOf, type IndexEntry } from './point-index.js';
import { FRAME_HEAD_BYTES, type LogPosition } from './segment-log.js';

/** An index entry that still knows its plaintext length (for a point's byte counts). */
export interface PendingEntry extends IndexEntry {
  plainLen: number;
}

interface PendingBatch {
  seq: number;
  /** Where its frame starts: recovery rescans from the oldest pending frame. */
  at: LogPosition;
  entries: PendingEntry[];
}

/** Batches durable in the segment log that no recovery point holds yet. */
export class PendingBatches {
  readonly #batches = new Map<number, PendingBatch>();
  /** (volume, block) → its pending entries, for resolving references. */
  #byBlock = new Map<number, PendingEntry[]>();

  get size(): number {
    return this.#batches.size;
  }

  has(seq: number): boolean {
    return this.#batches.has(seq);
  }

  /**
   * Records a batch whose frame starts at `at`. `resolutions` (one per entry) say where each
   * reference's record is; a batch without references needs none.
   */
  add(at: LogPosition, decoded: DecodedBatch, resolutions?: readonly Resolution[]): void {
    // Copy the MACs out so a pending batch does not keep the whole request body alive.
    const macs = Buffer.allocUnsafe(decoded.entries.length * MAC_BYTES);
    const entries: PendingEntry[] = [];
    decoded.entries.forEach((e, i) => {
      e.mac.copy(macs, i * MAC_BYTES);
      const entry: PendingEntry = {
        volumeId: e.volumeId,
        block: e.block,
        seq: decoded.seq,
        segment: at.segment,
        offset: at.offset + FRAME_HEAD_BYTES + e.offset,
        length: e.length,
        mac: macs.subarray(i * MAC_BYTES, (i + 1) * MAC_BYTES),
        plainLen: e.plainLen,
      };
      const r = resolutions?.[i];
      if (r && 'held' in r) Object.assign(entry, r.held);
      else if (r && 'local' in r) {
        const own = entries[r.local] as PendingEntry;
        Object.assign(entry, {
          segment: own.segment,
          offset: own.offset,
          length: own.length,
          recordSeq: decoded.seq,
        });
      }
      entries.push(entry);
    });
    this.#batches.set(decoded.seq, { seq: decoded.seq, at, entries });
    for (const e of entries) {
      const key = e.volumeId * 2 ** 32 + e.block;
      const list = this.#byBlock.get(key);
      if (list) list.push(e);
      else this.#byBlock.set(key, [e]);
    }
  }

  /** A pending record of this block with this MAC (any batch), for a reference to repeat. */
  find(volumeId: number, block: number, mac: Buffer): PendingEntry | undefined {
    return this.#byBlock.get(volumeId * 2 ** 32 + block)?.find((e) => e.mac.equals(mac));
  }

  /** Pending entries that point at another block's record: GC keeps those records and moves them. */
  references(): PendingEntry[] {
    return [...this.#batches.values()].flatMap((b) =>
      b.entries.filter((e) => e.recordSeq !== undefined),
    );
  }

  seqs(): number[] {
    return [...this.#batches.keys()].sort((a, b) => a - b);
  }

  /** The delta of the batches up to `upToSeq`: one entry per block, the highest seq's. */
  deltaUpTo(upToSeq: number, volumeId?: number): PendingEntry[] {
    const batches = [...this.#batches.values()].filter((b) => b.seq <= upToSeq);
    const entries = batches.sort((a, b) => a.seq - b.seq).flatMap((b) => b.entries);
    return deltaOf(
      volumeId === undefined ? entries : entries.filter((e) => e.volumeId === volumeId),
    );
  }

  /** Where a rescan must start to find every batch after `upToSeq` again: its oldest frame, else `end`. */
  firstFrameAfter(upToSeq: number, end: LogPosition): LogPosition {
    let first = end;
    for (const b of this.#batches.values()) {
      if (b.seq <= upToSeq) continue;
      if (
        b.at.segment < first.segment ||
        (b.at.segment === first.segment && b.at.offset < first.offset)
      ) {
        first = b.at;
      }
    }
    return first;
  }

  removeUpTo(upToSeq: number): void {
    for (const seq of this.#batches.keys()) if (seq <= upToSeq) this.#batches.delete(seq);
    const byBlock = new Map<number, PendingEntry[]>();
    for (const [key, list] of this.#byBlock) {
      const left = list.filter((e) => e.seq > upToSeq);
      if (left.length > 0) byBlock.set(key, left);
    }
    this.#byBlock = byBlock;
  }
}

export function withoutPlainLen({ plainLen: _, ...entry }: PendingEntry): IndexEntry {
  return entry;
}
