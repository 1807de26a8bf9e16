import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BlockStore } from '../../../../replicator/gateway/block-store.js';
import { planRetention } from '../../../../replicator/gateway/retention.js';
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

const H = 3_600_000;
const rules = { all: H, hourly: 24 * H, daily: 7 * 24 * H };
const now = new Date('2026-03-10T12:00:00Z');
/** A synthetic timeline, oldest first; the comment says what the rules above do with each point. */
const timeline = [
  '2026-03-01T10:00:00Z', // 1 older than `daily`: dropped
  '2026-03-05T09:00:00Z', // 2 not the newest of its day: dropped
  '2026-03-05T18:00:00Z', // 3 newest of 5 March: kept
  '2026-03-09T13:10:00Z', // 4 not the newest of its hour nor its day: dropped
  '2026-03-09T13:40:00Z', // 5 newest of that hour: kept
  '2026-03-10T10:20:00Z', // 6 not the newest of 10:00–11:00: dropped
  '2026-03-10T10:50:00Z', // 7 newest of that hour: kept
  '2026-03-10T11:05:00Z', // 8 younger than `all`: kept
  '2026-03-10T11:30:00Z', // 9 younger than `all`: kept
];

describe('planRetention', () => {
  it('keeps every recent point, one per hour, one per day, and drops the rest', () => {
    const points = timeline.map((time, i) => ({ id: i + 1, time }));
    expect(planRetention(points, now, rules)).toEqual([1, 2, 4, 6]);
  });

  it('always keeps the newest point, however old', () => {
    const points = [
      { id: 1, time: '2025-01-01T00:00:00Z' },
      { id: 2, time: '2025-01-02T00:00:00Z' },
    ];
    expect(planRetention(points, now, rules)).toEqual([1]);
  });
});

describe('AppStore.applyRetention', () => {
  let fx: Fixture;
  beforeEach(async () => {
    fx = await makeFixture();
  });
  afterEach(async () => {
    await fx.cleanup();
  });

  it('drops the planned points and every kept point still reads the same records', async () => {
    const store = await BlockStore.open({ dir: fx.storeDir });
    const app = await store.ensureApp(APP);
    const v = await registerTwo(fx, app);
    const truth = new Map<string, Buffer>();
    for (const [i, time] of timeline.entries()) {
      const seq = i + 1;
      // Each point rewrites a couple of blocks, so merging a dropped delta into its successor matters.
      await append(
        fx,
        app,
        seq,
        [
          { volume: v.disk, block: seq % 5 },
          { volume: v.disk, block: (seq * 3) % 7 },
          { volume: v.logs, block: seq % 2 },
        ],
        truth,
      );
      await app.commitPoint({
        upToSeq: seq,
        label: 'crash-consistent',
        time: new Date(time),
        volumes: volumesAt(v),
      });
    }
    const before = await snapshot(app);

    expect(await app.applyRetention(now, rules)).toEqual({ removed: [1, 2, 4, 6] });
    expect(app.points().map((p) => p.id)).toEqual([3, 5, 7, 8, 9]);
    const kept = new Map(
      [...before].filter(([key]) => [3, 5, 7, 8, 9].includes(Number(key.split('/')[0]))),
    );
    expect(await snapshot(app)).toEqual(kept);
    expect((await readdir(join(fx.storeDir, 'apps', APP, 'points'))).sort()).toEqual([
      '3.idx',
      '5.idx',
      '7.idx',
      '8.idx',
      '9.idx',
    ]);

    // The oldest kept point now holds everything before it: its counts say so.
    const first = app.point(3);
    expect(first.seqFrom).toBe(1);
    expect(first.volumes.disk?.blocksChanged).toBe((await app.pointEntries(3, 'disk')).length);
    expect(first.volumes.disk?.bytesChanged).toBe((first.volumes.disk?.blocksChanged ?? -1) * 4096);
    expect(app.point(5).seqFrom).toBe(4);
    await store.close();

    const again = await BlockStore.open({ dir: fx.storeDir });
    const reopened = appOf(again);
    expect(await snapshot(reopened)).toEqual(kept);
    const latest = await plaintexts(fx, reopened, v.disk, await reopened.pointEntries(9, 'disk'));
    for (const [block, p] of latest) expect(p).toEqual(truth.get(`disk:${block}`));
    expect(await reopened.applyRetention(now, rules)).toEqual({ removed: [] });
    await again.close();
  });
});
