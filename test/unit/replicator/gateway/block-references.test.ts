/** Blocks sent as references: resolved once to the record they repeat, kept by retention and GC, refused when not held. */
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isDrError } from '../../../../core/errors.js';
import { BlockStore } from '../../../../replicator/gateway/block-store.js';
import {
  decodePointIndex,
  encodePointIndex,
  type IndexEntry,
} from '../../../../replicator/gateway/point-index.js';
import {
  APP,
  append,
  appOf,
  BLOCK,
  type Fixture,
  makeFixture,
  plaintexts,
  registerTwo,
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

describe('block references at the gateway', () => {
  it('stores a repeat as a pointer, and the point still reads byte-exact after its original point is dropped and collected', async () => {
    const opts = { dir: fx.storeDir, segmentBytes: 40 * 1024 };
    const store = await BlockStore.open(opts);
    const app = await store.ensureApp(APP);
    const { disk } = await registerTwo(fx, app);
    const truth = new Map<string, Buffer>();
    const p0 = randomBytes(BLOCK);
    const p1 = randomBytes(BLOCK);
    // Batch 1: blocks 0-3 as data; 4 repeats 0 and 5 repeats 4 (both inside the batch).
    await append(
      fx,
      app,
      1,
      [
        { volume: disk, block: 0, plain: p0 },
        { volume: disk, block: 1, plain: p1 },
        { volume: disk, block: 2 },
        { volume: disk, block: 3 },
        { volume: disk, block: 4, plain: p0, source: 0 },
        { volume: disk, block: 5, plain: p0, source: 4 },
      ],
      truth,
    );
    const afterFirst = app.stats().segmentBytes;
    // Two references cost far less than one 4 KiB record.
    expect(afterFirst).toBeLessThan(5 * BLOCK);
    // Batch 2 fills segment 1 past its size: it is sealed, and GC may collect it.
    await append(
      fx,
      app,
      2,
      [8, 9, 10, 11, 12, 13, 14, 15].map((block) => ({ volume: disk, block })),
      truth,
    );
    await app.commitPoint({
      upToSeq: 2,
      label: 'fuzzy',
      time: new Date('2026-01-01T00:00:00Z'),
      volumes: volumesAt({ disk }),
    });
    // Batch 3 overwrites every data block of segment 1 but keeps the old content of 0 and 1
    // alive through references: 6 repeats 1, 7 repeats 0 (whose new content is X).
    await append(
      fx,
      app,
      3,
      [
        { volume: disk, block: 0 },
        { volume: disk, block: 1 },
        { volume: disk, block: 2 },
        { volume: disk, block: 3 },
        { volume: disk, block: 6, plain: p1, source: 1 },
        { volume: disk, block: 7, plain: p0, source: 0 },
        ...[8, 9, 10, 11].map((block) => ({ volume: disk, block })),
      ],
      truth,
    );
    // Segment 2 is sealed too; segment 3 holds the newest point's tail.
    await append(
      fx,
      app,
      4,
      [12, 13, 14, 15].map((block) => ({ volume: disk, block })),
      truth,
    );
    await app.commitPoint({
      upToSeq: 4,
      label: 'fuzzy',
      time: new Date('2026-01-01T01:00:00Z'),
      volumes: volumesAt({ disk }),
    });
    const entries = await app.pointEntries(2, 'disk');
    const refs = entries.filter((e) => e.recordSeq !== undefined).map((e) => e.block);
    expect(refs).toEqual([4, 5, 6, 7]);

    const read = async (a: typeof app, point: number) =>
      plaintexts(fx, a, disk, await a.pointEntries(point, 'disk'));
    const expectTruth = (got: Map<number, Buffer>) => {
      expect([...got.keys()].sort((a, b) => a - b)).toEqual([...Array(16).keys()]);
      for (const [block, plain] of got) expect(plain).toEqual(truth.get(`disk:${block}`));
    };
    expectTruth(await read(app, 2));
    const pointTwo = new Map(truth);
    // A batch not yet in a point repeats block 6 (itself a reference to block 1's old record).
    await append(fx, app, 5, [{ volume: disk, block: 3, plain: p1, source: 6 }], truth);

    expect(await app.applyRetention(new Date('2026-02-01T00:00:00Z'), keepNewestOnly)).toEqual({
      removed: [1],
    });
    const gc = await app.collectGarbage();
    // Segment 1 only lives on through the references (two records of fourteen): compacted, so
    // the records they point at moved, and the index followed them.
    expect(gc.segmentsCompacted).toBe(1);
    const survivor = await read(app, 2);
    for (const [block, plain] of survivor) expect(plain).toEqual(pointTwo.get(`disk:${block}`));
    expect(survivor.get(7)).toEqual(p0);
    expect(survivor.get(6)).toEqual(p1);
    // The pending reference followed its record when GC moved it.
    await app.commitPoint({
      upToSeq: 5,
      label: 'fuzzy',
      time: new Date('2026-01-01T02:00:00Z'),
      volumes: volumesAt({ disk }),
    });
    expectTruth(await read(app, 3));
    await store.close();

    const again = await BlockStore.open(opts);
    expectTruth(await read(appOf(again), 3));
    await again.close();
  });

  it('refuses a reference to a block it does not hold, or holds with other content, and stores nothing', async () => {
    const store = await BlockStore.open({ dir: fx.storeDir });
    const app = await store.ensureApp(APP);
    const { disk } = await registerTwo(fx, app);
    await append(fx, app, 1, [{ volume: disk, block: 0 }]);
    const refused = async (blocks: Parameters<typeof append>[3]) => {
      const err = await append(fx, app, 2, blocks).catch((e: unknown) => e);
      expect(isDrError(err, 'reference_refused')).toBe(true);
      expect(String(err)).toMatch(/does not hold with that content.*To resolve/);
    };
    // Never written.
    await refused([{ volume: disk, block: 3, plain: randomBytes(BLOCK), source: 9 }]);
    // Held, but the reference claims content it does not have (a forged MAC).
    await refused([{ volume: disk, block: 3, plain: randomBytes(BLOCK), source: 0 }]);
    // A reference to a later record of the same batch is no reference either.
    await refused([
      { volume: disk, block: 3, plain: Buffer.alloc(BLOCK, 7), source: 4 },
      { volume: disk, block: 4, plain: Buffer.alloc(BLOCK, 7) },
    ]);
    expect(app.stats()).toMatchObject({ lastSeq: 1, pendingSeqs: [1] });
    // The agent's fallback: the same batch with the data is taken.
    expect(await append(fx, app, 2, [{ volume: disk, block: 3 }])).toEqual({ duplicate: false });
    await store.close();
  });

  it('resolves the references of batches pending at a restart again', async () => {
    const opts = { dir: fx.storeDir };
    const store = await BlockStore.open(opts);
    const app = await store.ensureApp(APP);
    const { disk } = await registerTwo(fx, app);
    const truth = new Map<string, Buffer>();
    const same = randomBytes(BLOCK);
    await append(fx, app, 1, [{ volume: disk, block: 0, plain: same }], truth);
    await app.commitPoint({ upToSeq: 1, label: 'fuzzy', volumes: volumesAt({ disk }) });
    await append(
      fx,
      app,
      2,
      [
        { volume: disk, block: 1, plain: same, source: 0 },
        { volume: disk, block: 0 },
        { volume: disk, block: 2, plain: same, source: 1 },
      ],
      truth,
    );
    await store.close();

    const again = await BlockStore.open(opts);
    const reopened = appOf(again);
    expect(reopened.stats().pendingSeqs).toEqual([2]);
    await reopened.commitPoint({ upToSeq: 2, label: 'fuzzy', volumes: volumesAt({ disk }) });
    const got = await plaintexts(fx, reopened, disk, await reopened.pointEntries(2, 'disk'));
    expect(got.get(1)).toEqual(same);
    expect(got.get(2)).toEqual(same);
    expect(got.get(0)).toEqual(truth.get('disk:0'));
    await again.close();
  });
});

describe('point index format', () => {
  const entry = (block: number, recordSeq?: number): IndexEntry => ({
    volumeId: 1,
    block,
    seq: 5,
    segment: 2,
    offset: 100 * block,
    length: 90,
    mac: Buffer.alloc(16, block),
    ...(recordSeq === undefined ? {} : { recordSeq }),
  });

  it('writes the format earlier releases read when no entry is a reference', () => {
    const buf = encodePointIndex(3, [entry(0), entry(1)]);
    expect(buf.subarray(0, 4).toString()).toBe('LPX1');
    expect(decodePointIndex(buf, 3, 'p.idx')).toEqual([entry(0), entry(1)]);
  });

  it("keeps each reference's record seq in the newer format", () => {
    const buf = encodePointIndex(3, [entry(0), entry(1, 2)]);
    expect(buf.subarray(0, 4).toString()).toBe('LPX2');
    expect(decodePointIndex(buf, 3, 'p.idx')).toEqual([entry(0), entry(1, 2)]);
    const cut = buf.subarray(0, buf.length - 1);
    expect(() => decodePointIndex(cut, 3, 'p.idx')).toThrow(/p\.idx is .* bytes/);
  });
});
