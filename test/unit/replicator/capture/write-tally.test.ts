// The tally of what a block size costs the writes, fed with block_bio_queue lines as trace_pipe prints them.
import { describe, expect, it } from 'vitest';
import { BIO_LINE } from '../../../../replicator/capture/trace-tracker.js';
import { WriteTally } from '../../../../replicator/capture/write-tally.js';

const KiB = 1024;

/** A trace_pipe line of a write of `bytes` at byte `offset` on device 7,3. */
const writeLine = (offset: number, bytes: number, rwbs = 'WS') =>
  `fio-4120 [001] ..... 3952.228706: block_bio_queue: 7,3 ${rwbs} ${offset / 512} + ${bytes / 512} [fio]`;

/** Feeds lines to a tally as the trace tracker does: sector and count from the line. */
function tallyOf(blockSize: number, lines: string[]): WriteTally {
  const tally = new WriteTally(blockSize);
  for (const line of lines) {
    const m = BIO_LINE.exec(line);
    if (!m) throw new Error(`not a bio line: ${line}`);
    tally.addSectors(Number(m[4]), Number(m[5]));
  }
  return tally;
}

const dirtiedAt = (t: WriteTally, blockSize: number) => {
  const s = t.take();
  return {
    written: s.writtenBytes,
    dirtied: s.dirtied.find((d) => d.blockSize === blockSize)?.bytes,
  };
};

describe('WriteTally', () => {
  it('counts 4 KiB writes on 64 KiB blocks as 16x, and 1x at 4 KiB', () => {
    const lines = Array.from({ length: 100 }, (_, i) =>
      writeLine(i * 1024 * KiB + 8 * KiB, 4 * KiB),
    );
    const s = tallyOf(64 * KiB, lines).take();
    expect(s.writtenBytes).toBe(400 * KiB);
    expect(s.dirtied).toEqual([
      { blockSize: 4 * KiB, bytes: 400 * KiB },
      { blockSize: 16 * KiB, bytes: 1600 * KiB },
      { blockSize: 64 * KiB, bytes: 6400 * KiB },
    ]);
  });

  it('counts aligned 64 KiB writes on 64 KiB blocks as 1x', () => {
    const lines = Array.from({ length: 10 }, (_, i) => writeLine(i * 64 * KiB, 64 * KiB));
    expect(dirtiedAt(tallyOf(64 * KiB, lines), 64 * KiB)).toEqual({
      written: 640 * KiB,
      dirtied: 640 * KiB,
    });
  });

  it('counts a write that spans two blocks as both of them', () => {
    // 8 KiB from 60 KiB: the end of block 0 and the start of block 1.
    const t = tallyOf(64 * KiB, [writeLine(60 * KiB, 8 * KiB)]);
    expect(dirtiedAt(t, 64 * KiB)).toEqual({ written: 8 * KiB, dirtied: 128 * KiB });
    // And a 512-byte write still dirties one whole block of each size.
    const small = tallyOf(64 * KiB, [writeLine(512, 512)]).take();
    expect(small.dirtied.map((d) => d.bytes)).toEqual([4 * KiB, 16 * KiB, 64 * KiB]);
  });

  it('counts a rewrite of one block each time, on both sides', () => {
    const t = tallyOf(64 * KiB, [writeLine(0, 4 * KiB), writeLine(0, 4 * KiB)]);
    expect(dirtiedAt(t, 64 * KiB)).toEqual({ written: 8 * KiB, dirtied: 128 * KiB });
  });

  it('counts the volume block size once when it is one of the compared sizes', () => {
    const t = new WriteTally(16 * KiB);
    expect(t.blockSizes).toEqual([4 * KiB, 16 * KiB]);
    const big = new WriteTally(1024 * KiB);
    expect(big.blockSizes).toEqual([4 * KiB, 16 * KiB, 1024 * KiB]);
  });

  it('starts again from zero after a take, and ignores empty writes', () => {
    const t = tallyOf(64 * KiB, [writeLine(0, 4 * KiB)]);
    t.addSectors(100, 0);
    expect(t.take().writtenBytes).toBe(4 * KiB);
    expect(t.take()).toEqual({
      writtenBytes: 0,
      dirtied: [
        { blockSize: 4 * KiB, bytes: 0 },
        { blockSize: 16 * KiB, bytes: 0 },
        { blockSize: 64 * KiB, bytes: 0 },
      ],
    });
  });
});
