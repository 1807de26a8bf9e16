/** A takeover that serves at once: the new holder reads the app's older segments from the bucket when needed, never copying them first; collection still deletes only what the catalog stops naming. */
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AppStore } from '../../../../replicator/gateway/app-store.js';
import { BucketApp } from '../../../../replicator/gateway/bucket-reader.js';
import { chainsIn, chunksOf, followChains } from '../../../../replicator/gateway/chunk-chains.js';
import type { AppReplica } from '../../../../replicator/gateway/gateway-store.js';
import { ObjectStore } from '../../../../replicator/gateway/object-store.js';
import { memoryBucket } from './memory-bucket.js';
import {
  APP,
  append,
  type Fixture,
  makeFixture,
  plaintexts,
  recordsVia,
  registerTwo,
  volumesAt,
} from './store-fixture.js';

const SEGMENT_BYTES = 32 * 1024;
const free = async () => undefined;

describe('ObjectStore takeover', () => {
  let fx: Fixture;
  beforeEach(async () => {
    fx = await makeFixture();
  });
  afterEach(async () => {
    await fx.cleanup();
  });

  it('serves an app of several segments without fetching a segment byte before its first commit, restores every point byte-exact, and collects only what the catalog stops naming', async () => {
    const { bucket, gets, objects } = memoryBucket();
    const a = await ObjectStore.open({
      dir: join(fx.root, 'a'),
      bucket,
      leased: true,
      segmentBytes: SEGMENT_BYTES,
    });
    const onA = (await a.adopt(APP, free, 1)) as AppReplica & AppStore;
    const { disk, logs } = await registerTwo(fx, onA);
    const truth = new Map<string, Buffer>();
    /** Each point's blocks as the agent wrote them. */
    const points = new Map<number, Map<string, Buffer>>();
    const commit = async (on: AppReplica, upToSeq: number) => {
      const p = await on.commitPoint({
        upToSeq,
        label: 'fuzzy',
        volumes: volumesAt({ disk, logs }),
      });
      points.set(p.id, new Map(truth));
    };
    let seq = 0;
    for (let p = 0; p < 3; p++) {
      for (let i = 0; i < 12; i++)
        await append(
          fx,
          onA,
          ++seq,
          [{ volume: i % 2 ? logs : disk, block: (p * 5 + i) % 16 }],
          truth,
        );
      await commit(onA, seq);
    }
    const segments = new Set((await chunksOf(bucket, APP)).map((c) => c.segment));
    expect(segments.size).toBeGreaterThanOrEqual(3);

    // Gateway A is gone; B, on an empty machine, takes the app over and commits at once.
    gets.length = 0;
    const b = await ObjectStore.open({
      dir: join(fx.root, 'b'),
      bucket,
      leased: true,
      segmentBytes: SEGMENT_BYTES,
    });
    const onB = await b.adopt(APP, free, 2);
    seq = onB.committedSeq;
    for (let i = 0; i < 6; i++)
      await append(fx, onB as AppStore, ++seq, [{ volume: disk, block: i }], truth);
    await commit(onB, seq);
    const segmentGets = () => gets.filter((g) => g.key.includes('/segments/'));
    expect(segmentGets(), 'segment bytes fetched before the first commit').toEqual([]);
    expect(gets.reduce((n, g) => n + g.bytes, 0)).toBeLessThan(SEGMENT_BYTES);

    // Every point, through the new holder (older segments by range GETs) and from the bucket alone.
    const reader = (await BucketApp.load(bucket, APP)) as BucketApp;
    const viaB = recordsVia(onB);
    const viaBucket = recordsVia(reader);
    const check = async (ids: number[]) => {
      for (const id of ids)
        for (const v of [disk, logs]) {
          const want = points.get(id) as Map<string, Buffer>;
          for (const [source, via] of [
            ['holder', viaB],
            ['bucket', viaBucket],
          ] as const) {
            const entries = await (source === 'holder' ? onB : reader).pointEntries(id, v.name);
            const got = await plaintexts(fx, via, v, entries);
            for (const [block, plain] of got)
              expect(
                plain.equals(want.get(`${v.name}:${block}`) as Buffer),
                `${source} point ${id}`,
              ).toBe(true);
            expect(got.size).toBe(
              [...want.keys()].filter((k) => k.startsWith(`${v.name}:`)).length,
            );
          }
        }
    };
    await check([1, 2, 3, 4]);
    expect(segmentGets().length).toBeGreaterThan(0);

    // Retention keeps the last point; the collection compacts or drops the older segments, read
    // from the bucket, and the bucket then holds only chunks the catalog names.
    const later = new Date(Date.now() + 400 * 86_400_000);
    const { removed } = await onB.applyRetention(later, { all: 1, hourly: 1, daily: 1 });
    expect(removed).toEqual([1, 2, 3]);
    const before = segmentGets().length;
    const chunksBefore = await chunksOf(bucket, APP);
    const gc = await onB.collectGarbage();
    const gcGets = segmentGets().length - before;
    expect(gc.segmentsCompacted).toBeGreaterThan(0);
    expect(gc.segmentsRemoved + gc.segmentsCompacted).toBeGreaterThan(0);
    const catalog = objects.get(`apps/${APP}/catalog.json`) as Buffer;
    const { off, ends } = followChains(await chunksOf(bucket, APP), chainsIn(catalog, 'catalog'));
    expect(off).toEqual([]);
    // Compaction read each collected segment's live records as runs: a GET per chunk at most.
    const collected = chunksBefore.filter((c) => !ends.has(c.segment));
    expect(collected.length).toBeGreaterThan(0);
    expect(gcGets).toBeLessThanOrEqual(collected.length);
    expect(
      [...segments].some((s) => !ends.has(s)),
      'a segment collected from the bucket',
    ).toBe(true);
    const after = (await BucketApp.load(bucket, APP)) as BucketApp;
    expect(after.points().map((p) => p.id)).toEqual([4]);
    const viaAfter = recordsVia(after);
    for (const v of [disk, logs]) {
      const got = await plaintexts(fx, viaAfter, v, await after.pointEntries(4, v.name));
      for (const [block, plain] of got)
        expect(plain.equals(points.get(4)?.get(`${v.name}:${block}`) as Buffer)).toBe(true);
    }
    await a.close();
    await b.close();
  });
});
