/** A volume's write tallies over the last ten minutes, as the agent reports them with its status. */
import type { WriteSample } from '../capture/write-tally.js';
import type { WriteCost } from '../transport/wire-types.js';

/** How far back the figure reaches: long enough for a steady picture, short enough to follow a change of workload. */
export const WRITE_WINDOW_MS = 10 * 60_000;
const BUCKET_MS = 60_000;
const BUCKETS = WRITE_WINDOW_MS / BUCKET_MS;

interface Bucket {
  /** Which minute (ms since epoch / BUCKET_MS) it holds; -1: none. */
  minute: number;
  written: number;
  dirtied: number[];
}

/**
 * Ten one-minute buckets: a sample lands in the bucket of the minute it was taken, and the total
 * covers the buckets of the last ten minutes (the current one included), or less since the start.
 */
export class WriteWindow {
  private readonly buckets: Bucket[];

  constructor(
    private readonly blockSize: number,
    private readonly blockSizes: readonly number[],
    private readonly startedAt: number,
  ) {
    this.buckets = Array.from({ length: BUCKETS }, () => ({
      minute: -1,
      written: 0,
      dirtied: blockSizes.map(() => 0),
    }));
  }

  add(sample: WriteSample, now: number): void {
    const minute = Math.floor(now / BUCKET_MS);
    const b = this.buckets[minute % BUCKETS] as Bucket;
    if (b.minute !== minute) {
      b.minute = minute;
      b.written = 0;
      b.dirtied.fill(0);
    }
    b.written += sample.writtenBytes;
    for (const d of sample.dirtied) {
      const i = this.blockSizes.indexOf(d.blockSize);
      if (i >= 0) b.dirtied[i] = (b.dirtied[i] as number) + d.bytes;
    }
  }

  /** The window's figures as of `now`. */
  total(now: number): WriteCost {
    const minute = Math.floor(now / BUCKET_MS);
    let written = 0;
    const dirtied = this.blockSizes.map(() => 0);
    for (const b of this.buckets) {
      if (b.minute < 0 || b.minute <= minute - BUCKETS || b.minute > minute) continue;
      written += b.written;
      b.dirtied.forEach((n, i) => {
        dirtied[i] = (dirtied[i] as number) + n;
      });
    }
    const from = Math.max(this.startedAt, (minute - BUCKETS + 1) * BUCKET_MS);
    return {
      windowSeconds: Math.max(1, Math.round((now - from) / 1000)),
      writtenBytes: written,
      blockSize: this.blockSize,
      dirtied: this.blockSizes.map((blockSize, i) => ({ blockSize, bytes: dirtied[i] as number })),
    };
  }
}
