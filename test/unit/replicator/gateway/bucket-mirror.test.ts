import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLog } from '../../../../core/log.js';
import type { AppStore } from '../../../../replicator/gateway/app-store.js';
import { BlockStore } from '../../../../replicator/gateway/block-store.js';
import { fetchApp } from '../../../../replicator/gateway/bucket-fetch.js';
import { BucketMirror } from '../../../../replicator/gateway/bucket-mirror.js';
import { BucketApp } from '../../../../replicator/gateway/bucket-reader.js';
import { chunkKey } from '../../../../replicator/gateway/chunk-chains.js';
import type { ObjectBucket } from '../../../../replicator/gateway/object-bucket.js';
import { memoryBucket } from './memory-bucket.js';
import {
  APP,
  append,
  appOf,
  type Fixture,
  makeFixture,
  registerTwo,
  snapshot,
  volumesAt,
} from './store-fixture.js';

/**
 * Closes `store`, fetches its app from the bucket onto an empty machine, and checks it holds the
 * same records for every kept point; answers the fetched store (the caller closes it).
 */
async function fetchedMatches(
  fx: Fixture,
  store: BlockStore,
  app: AppStore,
  bucket: ObjectBucket,
): Promise<BlockStore> {
  const want = await snapshot(app);
  await store.close();
  const other = join(fx.root, 'other');
  await fetchApp(bucket, APP, join(other, 'apps', APP), silentLog);
  const fetched = await BlockStore.open({ dir: other, segmentBytes: 32 * 1024 });
  // No segment is copied: the new machine reads them from the bucket, as ObjectStore.adopt has it.
  expect(await readdir(join(other, 'apps', APP, 'segments'))).toEqual([]);
  const mirror = await BucketMirror.open(bucket, APP, silentLog);
  await appOf(fetched).attachRemote(mirror.remote());
  const got = await snapshot(appOf(fetched));
  expect(got.size).toBe(want.size);
  for (const [k, v] of want) expect(got.get(k)?.equals(v)).toBe(true);
  return fetched;
}

describe('BucketMirror', () => {
  let fx: Fixture;
  beforeEach(async () => {
    fx = await makeFixture();
  });
  afterEach(async () => {
    await fx.cleanup();
  });

  it('uploads segment bytes, then indexes, then the catalog; deletes only what the catalog dropped, after it', async () => {
    const store = await BlockStore.open({ dir: fx.storeDir, segmentBytes: 32 * 1024 });
    const app = await store.ensureApp(APP);
    const { disk, logs } = await registerTwo(fx, app);
    const { bucket, objects, calls } = memoryBucket();
    const mirror = await BucketMirror.open(bucket, APP, silentLog);
    const sync = () => mirror.sync(app as AppStore);
    let seq = 0;
    for (let p = 0; p < 3; p++) {
      for (let i = 0; i < 4; i++) await append(fx, app, ++seq, [{ volume: disk, block: i }]);
      await append(fx, app, ++seq, [{ volume: logs, block: p }]);
      await app.commitPoint({ upToSeq: seq, label: 'fuzzy', volumes: volumesAt({ disk, logs }) });
      calls.length = 0;
      await sync();
      const kinds = calls.map((c) => (/segments\//.test(c) ? 's' : /points\//.test(c) ? 'i' : 'c'));
      expect(kinds.join('')).toMatch(/^s*i+c$/);
      expect(calls.at(-1)).toBe(`put apps/${APP}/catalog.json`);
    }
    expect([...objects.keys()].filter((k) => k.includes('/segments/')).length).toBeGreaterThan(2);

    // Nothing new: only the catalog goes up again.
    calls.length = 0;
    await sync();
    expect(calls).toEqual([`put apps/${APP}/catalog.json`]);

    // Retention drops points 1 and 2; their indexes go only after the new catalog, GC's segments too.
    const later = new Date(Date.now() + 400 * 86_400_000);
    const { removed } = await app.applyRetention(later, { all: 1, hourly: 1, daily: 1 });
    expect(removed).toEqual([1, 2]);
    const gc = await app.collectGarbage();
    calls.length = 0;
    await sync();
    const catalogAt = calls.indexOf(`put apps/${APP}/catalog.json`);
    expect(catalogAt).toBeGreaterThanOrEqual(0);
    const deletes = calls.filter((c) => c.startsWith('delete'));
    expect(deletes).toContain(`delete apps/${APP}/points/1.idx`);
    expect(deletes).toContain(`delete apps/${APP}/points/2.idx`);
    if (gc.segmentsRemoved + gc.segmentsCompacted > 0)
      expect(deletes.some((d) => d.includes('/segments/'))).toBe(true);
    for (const d of deletes) expect(calls.indexOf(d)).toBeGreaterThan(catalogAt);

    // A machine with nothing fetches the app and holds the same records for every kept point.
    const fetched = await fetchedMatches(fx, store, app as AppStore, bucket);
    expect(
      appOf(fetched)
        .points()
        .map((p) => p.id),
    ).toEqual([3]);
    await fetched.close();
  });

  it('learns what the bucket holds at open and uploads only the rest', async () => {
    const store = await BlockStore.open({ dir: fx.storeDir, segmentBytes: 32 * 1024 });
    const app = await store.ensureApp(APP);
    const { disk, logs } = await registerTwo(fx, app);
    const { bucket, calls } = memoryBucket();
    for (let i = 1; i <= 4; i++) await append(fx, app, i, [{ volume: disk, block: i }]);
    await app.commitPoint({ upToSeq: 4, label: 'fuzzy', volumes: volumesAt({ disk, logs }) });
    const first = await BucketMirror.open(bucket, APP, silentLog);
    await first.sync(app as AppStore);
    const segmentPuts = calls.filter((c) => c.includes('/segments/')).length;
    expect(segmentPuts).toBeGreaterThan(0);
    calls.length = 0;
    // A restarted gateway: a new mirror over the same bucket sends no segment bytes again.
    const second = await BucketMirror.open(bucket, APP, silentLog);
    await second.sync(app as AppStore);
    expect(calls.filter((c) => c.includes('/segments/'))).toEqual([]);
    await store.close();
  });

  it('takes batches and commits into the local log while a sync waits for the bucket; the sync uploads the state it settled', async () => {
    const store = await BlockStore.open({ dir: fx.storeDir, segmentBytes: 32 * 1024 });
    const app = (await store.ensureApp(APP)) as AppStore;
    const { disk, logs } = await registerTwo(fx, app);
    const { bucket, objects } = memoryBucket();
    // The bucket holds every segment PUT until the test lets it go.
    let reached!: () => void;
    const atBucket = new Promise<void>((resolve) => {
      reached = resolve;
    });
    let letGo!: () => void;
    const gate = new Promise<void>((resolve) => {
      letGo = resolve;
    });
    const put = bucket.put.bind(bucket);
    bucket.put = async (key: string, body: Buffer) => {
      if (key.includes('/segments/')) {
        reached();
        await gate;
      }
      return put(key, body);
    };
    for (let i = 1; i <= 4; i++) await append(fx, app, i, [{ volume: disk, block: i }]);
    await app.commitPoint({ upToSeq: 4, label: 'fuzzy', volumes: volumesAt({ disk, logs }) });
    const mirror = await BucketMirror.open(bucket, APP, silentLog);
    let synced = false;
    const sync = mirror.sync(app).then((r) => {
      synced = true;
      return r;
    });
    await atBucket;
    for (let i = 5; i <= 8; i++) await append(fx, app, i, [{ volume: logs, block: i }]);
    await app.commitPoint({ upToSeq: 8, label: 'fuzzy', volumes: volumesAt({ disk, logs }) });
    expect(synced).toBe(false);
    letGo();
    await sync;
    const catalogIn = () =>
      JSON.parse((objects.get(`apps/${APP}/catalog.json`) as Buffer).toString('utf8')) as {
        points: { id: number }[];
      };
    // The upload is of the instant it settled at: point 1, its segment bytes and index.
    expect(catalogIn().points.map((p) => p.id)).toEqual([1]);
    expect(objects.has(`apps/${APP}/points/2.idx`)).toBe(false);
    await mirror.sync(app);
    expect(catalogIn().points.map((p) => p.id)).toEqual([1, 2]);
    // And the bucket alone gives back both points' records.
    await (await fetchedMatches(fx, store, app, bucket)).close();
  });

  it('pushes segment bytes between commits without naming anything new; the commit then sends only the rest', async () => {
    const store = await BlockStore.open({ dir: fx.storeDir, segmentBytes: 32 * 1024 });
    const app = (await store.ensureApp(APP)) as AppStore;
    const { disk, logs } = await registerTwo(fx, app);
    const { bucket, objects, calls } = memoryBucket();
    const mirror = await BucketMirror.open(bucket, APP, silentLog);
    for (let i = 1; i <= 4; i++) await append(fx, app, i, [{ volume: disk, block: i }]);
    const pushed = await mirror.pushSegments(app);
    expect(pushed).toBeGreaterThan(0);
    expect(calls.every((c) => c.includes('/segments/'))).toBe(true);
    expect([...objects.keys()].some((k) => !k.includes('/segments/'))).toBe(false);
    // Nothing new since: a second push sends nothing.
    expect(await mirror.pushSegments(app)).toBe(0);
    await app.commitPoint({ upToSeq: 4, label: 'fuzzy', volumes: volumesAt({ disk, logs }) });
    calls.length = 0;
    await mirror.sync(app);
    // The commit wrote only its own frame after the pushed batches: the index, then the catalog.
    expect(calls.filter((c) => c.includes('/segments/')).length).toBeLessThanOrEqual(1);
    expect(calls.at(-1)).toBe(`put apps/${APP}/catalog.json`);
    await (await fetchedMatches(fx, store, app, bucket)).close();
  });

  it('writes the catalog only over the version it descends from: a mirror another wrote past is refused (lease_lost), and a lost answer of its own is recognised', async () => {
    const store = await BlockStore.open({ dir: fx.storeDir, segmentBytes: 32 * 1024 });
    const app = await store.ensureApp(APP);
    const { disk, logs } = await registerTwo(fx, app);
    const { bucket, objects } = memoryBucket();
    await append(fx, app, 1, [{ volume: disk, block: 1 }]);
    await app.commitPoint({ upToSeq: 1, label: 'fuzzy', volumes: volumesAt({ disk, logs }) });
    const mine = await BucketMirror.open(bucket, APP, silentLog);
    const other = await BucketMirror.open(bucket, APP, silentLog);
    await other.sync(app as AppStore);
    const written = objects.get(`apps/${APP}/catalog.json`);
    await append(fx, app, 2, [{ volume: disk, block: 2 }]);
    await app.commitPoint({ upToSeq: 2, label: 'fuzzy', volumes: volumesAt({ disk, logs }) });
    await expect(mine.sync(app as AppStore)).rejects.toMatchObject({
      code: 'lease_lost',
    });
    expect(objects.get(`apps/${APP}/catalog.json`)).toEqual(written);

    // Our own write landed but its answer was lost: the bucket holds our bytes, so we go on.
    const lossy = await BucketMirror.open(bucket, APP, silentLog);
    const realPutIf = bucket.putIf.bind(bucket);
    let drop = true;
    bucket.putIf = async (key, body, expected) => {
      const out = await realPutIf(key, body, expected);
      if (drop && key.endsWith('catalog.json')) {
        drop = false;
        throw new Error('connection reset after the write');
      }
      return out;
    };
    await expect(lossy.sync(app as AppStore)).rejects.toThrow(/reset/);
    await append(fx, app, 3, [{ volume: logs, block: 2 }]);
    await app.commitPoint({ upToSeq: 3, label: 'fuzzy', volumes: volumesAt({ disk, logs }) });
    await lossy.sync(app as AppStore);
    const catalog = JSON.parse((objects.get(`apps/${APP}/catalog.json`) as Buffer).toString());
    expect(catalog.points).toHaveLength(3);
    await store.close();
  });

  it('reads committed records straight from the bucket (a non-holder), across chunks, into the buffer it is given', async () => {
    const store = await BlockStore.open({ dir: fx.storeDir, segmentBytes: 1024 * 1024 });
    const app = (await store.ensureApp(APP)) as AppStore;
    const { disk, logs } = await registerTwo(fx, app);
    const { bucket } = memoryBucket();
    const mirror = await BucketMirror.open(bucket, APP, silentLog);
    // Two syncs: the segment goes up as two chunk objects.
    for (let i = 1; i <= 3; i++) await append(fx, app, i, [{ volume: disk, block: i }]);
    await app.commitPoint({ upToSeq: 3, label: 'fuzzy', volumes: volumesAt({ disk, logs }) });
    await mirror.sync(app);
    for (let i = 4; i <= 6; i++) await append(fx, app, i, [{ volume: logs, block: i }]);
    await app.commitPoint({ upToSeq: 6, label: 'fuzzy', volumes: volumesAt({ disk, logs }) });
    await mirror.sync(app);
    const reader = (await BucketApp.load(bucket, APP)) as BucketApp;
    expect(reader.points().map((p) => p.id)).toEqual([1, 2]);
    const entries = [
      ...(await reader.pointEntries(2, disk.name)),
      ...(await reader.pointEntries(2, logs.name)),
    ];
    expect(entries).toHaveLength(6);
    for (const e of entries) {
      const want = await app.readRecord(e);
      expect((await reader.readSpan(e.segment, e.offset, e.length)).equals(want)).toBe(true);
      const into = Buffer.alloc(e.length + 16, 0xaa);
      await reader.readSpan(e.segment, e.offset, e.length, into);
      expect(into.subarray(0, e.length).equals(want)).toBe(true);
    }
    // One span over the whole segment crosses the two chunks.
    const seg = entries[0]?.segment as number;
    const end = Math.max(...entries.map((e) => e.offset + e.length));
    const into = Buffer.alloc(end);
    await reader.readSpan(seg, 0, end, into);
    expect(into.equals(await app.readSpan(seg, 0, end))).toBe(true);
    await expect(reader.readSpan(seg, 0, end, Buffer.alloc(end - 1))).rejects.toThrow(RangeError);
    // Into parts, in order, as the record stream reads a run (across the two chunks).
    const parts = [Buffer.alloc(7), Buffer.alloc(end - 7)];
    await reader.readSpanParts(seg, 0, parts);
    expect(Buffer.concat(parts).equals(await app.readSpan(seg, 0, end))).toBe(true);
    // A chunk an interrupted upload left, off the chain and across its chunks: never read.
    await bucket.put(chunkKey(APP, seg, 1), Buffer.alloc(end, 0xee));
    const again = (await BucketApp.load(bucket, APP)) as BucketApp;
    expect((await again.readSpan(seg, 0, end)).equals(await app.readSpan(seg, 0, end))).toBe(true);
    await store.close();
  });
});
