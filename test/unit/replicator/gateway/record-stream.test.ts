/** Record streaming: records that lie back to back are read in runs of at most 4 MiB. */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { silentLog } from '../../../../core/log.js';
import type { IndexEntry } from '../../../../replicator/gateway/block-store.js';
import { recordRuns } from '../../../../replicator/gateway/record-stream.js';
import {
  FRAME_BATCH,
  FRAME_HEAD_BYTES,
  SegmentLog,
} from '../../../../replicator/gateway/segment-log.js';

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

describe('SegmentLog.readParts', () => {
  it('reads a span straight into many parts in order (more than one readv takes), and a short file is store damage', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lifeboat-readparts-'));
    const log = await SegmentLog.open({ dir, segmentBytes: 64 * 1024 * 1024, log: silentLog });
    try {
      const payload = randomBytes(3000 * 37 + 11);
      const frame = await log.append(FRAME_BATCH, payload);
      const at = { segment: frame.segment, offset: frame.offset + FRAME_HEAD_BYTES };
      // 3001 parts of odd sizes, each apart from the next in one buffer (as frame heads leave room).
      const room = Buffer.alloc(payload.length + 3001 * 16);
      const parts: Buffer[] = [];
      for (let o = 0, r = 16; o < payload.length; o += 37, r += 16 + 37) {
        parts.push(room.subarray(r, r + Math.min(37, payload.length - o)));
      }
      await log.readParts(at.segment, at.offset, parts);
      expect(Buffer.concat(parts).equals(payload)).toBe(true);
      await log.close();
      await truncate(log.path(at.segment), at.offset + 1000);
      const again = await SegmentLog.open({ dir, segmentBytes: 64 * 1024 * 1024, log: silentLog });
      try {
        await expect(again.readParts(at.segment, at.offset, parts)).rejects.toMatchObject({
          code: 'store_corrupt',
        });
      } finally {
        await again.close();
      }
    } finally {
      await log.close().catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    }
  });
});
