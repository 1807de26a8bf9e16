import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BlockStore } from '../../../../replicator/gateway/block-store.js';
import {
  APP,
  append,
  appOf,
  type Fixture,
  makeFixture,
  plaintexts,
  registerTwo,
  snapshot,
  volumesAt,
} from './store-fixture.js';

let fx: Fixture;
beforeEach(async () => {
  fx = await makeFixture();
});
afterEach(async () => {
  await fx.cleanup();
});

const keepNewestOnly = { all: 0, hourly: 0, daily: 0 };
const blocks = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

describe('AppStore.collectGarbage', () => {
  it('deletes dead segments, compacts sparse ones, and kept points read the same bytes', async () => {
    // Three 4-block batches fill a segment; a fourth starts the next one.
    const opts = { dir: fx.storeDir, segmentBytes: 40 * 1024 };
    const store = await BlockStore.open(opts);
    const app = await store.ensureApp(APP);
    const v = await registerTwo(fx, app);
    const disk = v.disk;
    const truth = new Map<string, Buffer>();
    const write = (seq: number, list: number[]) =>
      append(
        fx,
        app,
        seq,
        list.map((block) => ({ volume: disk, block })),
        truth,
      );

    // Segment 1: blocks 0–11. Segment 2: blocks 0–10. Segment 3: blocks 0–10 again.
    for (const [seq, list] of [
      [1, blocks(0, 4)],
      [2, blocks(4, 8)],
      [3, blocks(8, 12)],
    ] as const)
      await write(seq, [...list]);
    await app.commitPoint({
      upToSeq: 3,
      label: 'fuzzy',
      time: new Date('2026-01-01T00:00:00Z'),
      volumes: volumesAt(v),
    });
    for (const [seq, list] of [
      [4, blocks(0, 4)],
      [5, blocks(4, 8)],
      [6, blocks(8, 11)],
    ] as const)
      await write(seq, [...list]);
    await app.commitPoint({
      upToSeq: 6,
      label: 'fuzzy',
      time: new Date('2026-01-01T01:00:00Z'),
      volumes: volumesAt(v),
    });
    for (const [seq, list] of [
      [7, blocks(0, 4)],
      [8, blocks(4, 8)],
      [9, blocks(8, 11)],
    ] as const)
      await write(seq, [...list]);
    await app.commitPoint({
      upToSeq: 9,
      label: 'fuzzy',
      time: new Date('2026-01-01T02:00:00Z'),
      volumes: volumesAt(v),
    });
    await write(10, [2, 12]); // pending: must survive untouched
    expect(app.stats().segments).toBe(4);

    expect(await app.applyRetention(new Date('2026-02-01T00:00:00Z'), keepNewestOnly)).toEqual({
      removed: [1, 2],
    });
    const before = await snapshot(app);
    const headBefore = await app.headEntries('disk');
    const headBytes = await Promise.all(headBefore.map((e) => app.readRecord(e)));
    const sizeBefore = app.stats().segmentBytes;

    // A reader streaming the latest point holds its records while GC runs; GC waits for it to finish.
    const [streamed, pendingGc] = await app.withReadLock(async () => {
      const entries = await app.pointEntries(3, 'disk');
      const gc = app.collectGarbage();
      await new Promise((resolve) => setTimeout(resolve, 20));
      return [await Promise.all(entries.map((e) => app.readRecord(e))), gc] as const;
    });
    expect(streamed).toHaveLength(12);
    expect(
      Buffer.concat(streamed).equals(
        Buffer.concat([...before].filter(([k]) => k.startsWith('3/disk/')).map(([, b]) => b)),
      ),
    ).toBe(true);

    // Segment 1 keeps one live block (11) of twelve: compacted. Segment 2 is fully overwritten: removed.
    const result = await pendingGc;
    expect(result).toMatchObject({ segmentsRemoved: 1, segmentsCompacted: 1 });
    expect(result.bytesReclaimed).toBeGreaterThan(0);
    expect(app.stats().segmentBytes).toBe(sizeBefore - result.bytesReclaimed);
    expect(await readdir(join(fx.storeDir, 'apps', APP, 'segments'))).toEqual([
      '00000003.seg',
      '00000004.seg',
    ]);
    expect(await snapshot(app)).toEqual(before);
    const headAfter = await app.headEntries('disk');
    expect(await Promise.all(headAfter.map((e) => app.readRecord(e)))).toEqual(headBytes);
    const plain = await plaintexts(fx, app, disk, headAfter);
    for (const [block, p] of plain) expect(p).toEqual(truth.get(`disk:${block}`));
    expect(await app.collectGarbage()).toEqual({
      segmentsRemoved: 0,
      segmentsCompacted: 0,
      bytesReclaimed: 0,
    });
    await store.close();

    const again = await BlockStore.open(opts);
    const reopened = appOf(again);
    expect(reopened.stats().pendingSeqs).toEqual([10]);
    expect(await snapshot(reopened)).toEqual(before);
    const head = await reopened.headEntries('disk');
    expect(await Promise.all(head.map((e) => reopened.readRecord(e)))).toEqual(headBytes);
    await again.close();
  });
});
