/** Record streaming: records that lie back to back are read in runs of at most 4 MiB. */
import { describe, expect, it } from 'vitest';
import type { IndexEntry } from '../../../../replicator/gateway/block-store.js';
import { recordRuns } from '../../../../replicator/gateway/record-stream.js';

const entry = (block: number, segment: number, offset: number, length: number): IndexEntry =>
  ({ block, segment, offset, length, seq: 1, volumeId: 1, mac: Buffer.alloc(16) }) as IndexEntry;

describe('recordRuns', () => {
  it('joins adjacent records of one segment and splits at gaps, segments and 4 MiB', () => {
    const big = 3 * 1024 * 1024;
    const runs = recordRuns([
      entry(0, 1, 0, 100),
      entry(1, 1, 100, 50),
      entry(2, 1, 200, 10), // a gap
      entry(3, 2, 210, 10), // another segment
      entry(4, 2, 220, big),
      entry(5, 2, 220 + big, big), // past 4 MiB together
    ]);
    expect(runs.map((r) => [r.segment, r.offset, r.length, r.entries.length])).toEqual([
      [1, 0, 150, 2],
      [1, 200, 10, 1],
      [2, 210, 10 + big, 2],
      [2, 220 + big, big, 1],
    ]);
    expect(recordRuns([])).toEqual([]);
  });
});
