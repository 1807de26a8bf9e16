import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isDrError } from '../../../../core/errors.js';
import { BlockStore } from '../../../../replicator/gateway/block-store.js';
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

describe('BlockStore', () => {
  it('gives the same entries and plaintext after commit and reopen', async () => {
    const store = await BlockStore.open({ dir: fx.storeDir });
    const app = await store.ensureApp(APP);
    const v = await registerTwo(fx, app);
    const disk = v.disk;
    const logs = v.logs;
    const truth = new Map<string, Buffer>();
    await append(
      fx,
      app,
      1,
      [
        { volume: disk, block: 0 },
        { volume: disk, block: 3 },
        { volume: logs, block: 1 },
      ],
      truth,
    );
    await append(
      fx,
      app,
      2,
      [
        { volume: disk, block: 3 },
        { volume: disk, block: 7, plain: Buffer.alloc(BLOCK) },
      ],
      truth,
    );
    const point = await app.commitPoint({
      upToSeq: 2,
      label: 'crash-consistent',
      volumes: volumesAt(v),
    });

    expect(point).toMatchObject({ id: 1, label: 'crash-consistent', seqFrom: 1, seqTo: 2 });
    expect(point.volumes.disk).toEqual({
      size: 16 * BLOCK,
      digest: 'digest-of-disk',
      blocksChanged: 3,
      bytesChanged: 3 * BLOCK,
    });
    const before = await app.pointEntries(1, 'disk');
    expect(before.map((e) => [e.block, e.seq])).toEqual([
      [0, 1],
      [3, 2],
      [7, 2],
    ]);
    const storeId = app.storeId;
    await store.close();

    const again = await BlockStore.open({ dir: fx.storeDir });
    expect(again.apps()).toEqual([APP]);
    const reopened = appOf(again);
    expect(reopened.storeId).toBe(storeId);
    expect(reopened.points()).toEqual([point]);
    expect(reopened.volumes().map((x) => [x.name, x.id])).toEqual([
      ['disk', 1],
      ['logs', 2],
    ]);
    expect(reopened.volumes()[0]?.wrappedKey.equals(disk.wrappedKey)).toBe(true);
    const after = await reopened.pointEntries(1, 'disk');
    expect(after).toEqual(before);
    const plain = await plaintexts(fx, reopened, disk, after);
    for (const [block, p] of plain) expect(p).toEqual(truth.get(`disk:${block}`));
    const logPlain = await plaintexts(fx, reopened, logs, await reopened.pointEntries(1, 'logs'));
    expect(logPlain.get(1)).toEqual(truth.get('logs:1'));
    expect(reopened.stats()).toMatchObject({
      points: 1,
      pendingBatches: 0,
      committedSeq: 2,
      lastSeq: 2,
    });
    await again.close();
  });

  it('does not write a duplicate seq twice, pending or committed', async () => {
    const store = await BlockStore.open({ dir: fx.storeDir });
    const app = await store.ensureApp(APP);
    const v = await registerTwo(fx, app);
    expect(await append(fx, app, 1, [{ volume: v.disk, block: 0 }])).toEqual({ duplicate: false });
    const size = app.stats().segmentBytes;
    expect(await append(fx, app, 1, [{ volume: v.disk, block: 0 }])).toEqual({ duplicate: true });
    expect(app.stats().segmentBytes).toBe(size);
    await app.commitPoint({ upToSeq: 1, label: 'fuzzy', volumes: volumesAt(v) });
    expect(await append(fx, app, 1, [{ volume: v.disk, block: 0 }])).toEqual({ duplicate: true });
    expect(app.stats().segmentBytes).toBe(size);
    const seg = join(fx.storeDir, 'apps', APP, 'segments', '00000001.seg');
    expect((await stat(seg)).size).toBe(size);
    await store.close();
  });

  it('keeps batches beyond upToSeq pending across a reopen, and head shows them', async () => {
    const store = await BlockStore.open({ dir: fx.storeDir, segmentBytes: 10 * BLOCK });
    const app = await store.ensureApp(APP);
    const v = await registerTwo(fx, app);
    const truth = new Map<string, Buffer>();
    for (let seq = 1; seq <= 6; seq++)
      await append(
        fx,
        app,
        seq,
        [
          { volume: v.disk, block: seq % 4 },
          { volume: v.disk, block: 9 },
        ],
        truth,
      );
    await app.commitPoint({ upToSeq: 3, label: 'fuzzy', volumes: volumesAt(v) });
    expect(app.stats().segments).toBeGreaterThan(1);
    await store.close();

    const again = await BlockStore.open({ dir: fx.storeDir, segmentBytes: 10 * BLOCK });
    const app2 = appOf(again);
    expect(app2.stats()).toMatchObject({ pendingSeqs: [4, 5, 6], committedSeq: 3, lastSeq: 6 });
    const head = await app2.headEntries('disk');
    expect(head.map((e) => [e.block, e.seq])).toEqual([
      [0, 4],
      [1, 5],
      [2, 6],
      [3, 3],
      [9, 6],
    ]);
    const plain = await plaintexts(fx, app2, v.disk, head);
    for (const [block, p] of plain) expect(p).toEqual(truth.get(`disk:${block}`));
    const point2 = await app2.commitPoint({
      upToSeq: 6,
      label: 'app-consistent',
      volumes: volumesAt(v),
    });
    expect(point2).toMatchObject({ id: 2, seqFrom: 4, seqTo: 6 });
    expect(await app2.pointEntries(2, 'disk')).toEqual(head);
    await again.close();
  });

  it('registers volumes with stable ids and keeps the first wrapped key', async () => {
    const store = await BlockStore.open({ dir: fx.storeDir });
    const app = await store.ensureApp(APP);
    const first = await registerTwo(fx, app);
    const second = await app.registerVolumes([
      { name: 'data', blockSize: BLOCK, size: 4 * BLOCK, wrappedKey: fx.wrap('data') },
      { name: 'disk', blockSize: BLOCK, size: 32 * BLOCK, wrappedKey: fx.wrap('disk') },
    ]);
    expect(second.map((m) => [m.name, m.id, m.size])).toEqual([
      ['data', 3, 4 * BLOCK],
      ['disk', 1, 32 * BLOCK],
    ]);
    expect(second[1]?.wrappedKey.equals(first.disk.wrappedKey)).toBe(true);
    const catalog = JSON.parse(
      await readFile(join(fx.storeDir, 'apps', APP, 'catalog.json'), 'utf8'),
    );
    expect(catalog.volumes[0].wrappedKey).toBe(first.disk.wrappedKey.toString('base64'));
    expect(catalog.storeId).toMatch(/^[0-9a-f]{32}$/);
    await store.close();
  });

  it('commits an empty point that still records sizes and digests', async () => {
    const store = await BlockStore.open({ dir: fx.storeDir });
    const app = await store.ensureApp(APP);
    const v = await registerTwo(fx, app);
    const p = await app.commitPoint({ upToSeq: 0, label: 'fuzzy', volumes: volumesAt(v) });
    expect(p.volumes.logs).toEqual({
      size: 16 * BLOCK,
      digest: 'digest-of-logs',
      blocksChanged: 0,
      bytesChanged: 0,
    });
    expect(await app.pointEntries(p.id, 'disk')).toEqual([]);
    await store.close();
  });

  it('commits across a batch that never arrived (an agent crash leaves a gap its scan refills)', async () => {
    const store = await BlockStore.open({ dir: fx.storeDir });
    const app = await store.ensureApp(APP);
    const v = await registerTwo(fx, app);
    await append(fx, app, 1, [{ volume: v.disk, block: 0 }]);
    await append(fx, app, 3, [{ volume: v.disk, block: 1 }]);
    const p = await app.commitPoint({ upToSeq: 3, label: 'fuzzy', volumes: volumesAt(v) });
    expect((await app.pointEntries(p.id, 'disk')).map((e) => [e.block, e.seq])).toEqual([
      [0, 1],
      [1, 3],
    ]);
    expect(app.stats().pendingSeqs).toEqual([]);
    await store.close();
  });

  it('names the app, the point and the remedy for an unknown point', async () => {
    const store = await BlockStore.open({ dir: fx.storeDir });
    const app = await store.ensureApp(APP);
    let err: unknown;
    try {
      app.point('latest');
    } catch (e) {
      err = e;
    }
    expect(isDrError(err, 'point_unknown')).toBe(true);
    expect(String(err)).toContain(`app ${APP} has no recovery point latest`);
    expect(String(err)).toContain(`list points with \`dr points ${APP}\``);
    await expect(app.pointEntries(7, 'disk')).rejects.toThrow(/no volume|no recovery point 7/);
    await store.close();
  });

  it('refuses app names that would leave the store folder', async () => {
    const store = await BlockStore.open({ dir: fx.storeDir });
    await expect(store.ensureApp('../evil')).rejects.toThrow('not a valid app name');
    expect(await readdir(join(fx.storeDir, 'apps'))).toEqual([]);
    await store.close();
  });
});
