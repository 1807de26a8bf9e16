import { appendFile, readdir, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isDrError } from '../../../../core/errors.js';
import {
  type AppStore,
  BlockStore,
  type VolumeMeta,
} from '../../../../replicator/gateway/block-store.js';
import {
  APP,
  append,
  appOf,
  capturingLog,
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

const appDir = () => join(fx.storeDir, 'apps', APP);
const segmentPath = () => join(appDir(), 'segments', '00000001.seg');

/** Point 1 over batches 1–2, then batches 3 and 4 pending; returns what batch 4 added to the file. */
async function buildHistory(): Promise<{
  v: { disk: VolumeMeta; logs: VolumeMeta };
  truth: Map<string, Buffer>;
  committed: Map<string, Buffer>;
  before4: number;
}> {
  const store = await BlockStore.open({ dir: fx.storeDir });
  const app = await store.ensureApp(APP);
  const v = await registerTwo(fx, app);
  const truth = new Map<string, Buffer>();
  await append(
    fx,
    app,
    1,
    [
      { volume: v.disk, block: 0 },
      { volume: v.disk, block: 1 },
    ],
    truth,
  );
  await append(fx, app, 2, [{ volume: v.disk, block: 1 }], truth);
  await app.commitPoint({ upToSeq: 2, label: 'crash-consistent', volumes: volumesAt(v) });
  const committed = await snapshot(app);
  await append(fx, app, 3, [{ volume: v.disk, block: 2 }], truth);
  const before4 = app.stats().segmentBytes;
  await append(fx, app, 4, [
    { volume: v.disk, block: 0 },
    { volume: v.disk, block: 3 },
  ]);
  await store.close();
  return { v, truth, committed, before4 };
}

async function expectIntact(app: AppStore, h: Awaited<ReturnType<typeof buildHistory>>) {
  expect(app.stats()).toMatchObject({ pendingSeqs: [3], committedSeq: 2, lastSeq: 3 });
  expect(await snapshot(app)).toEqual(h.committed);
  const head = await app.headEntries('disk');
  expect(head.map((e) => [e.block, e.seq])).toEqual([
    [0, 1],
    [1, 2],
    [2, 3],
  ]);
  const plain = await plaintexts(fx, app, h.v.disk, head);
  for (const [block, p] of plain) expect(p).toEqual(h.truth.get(`disk:${block}`));
}

describe('crash recovery', () => {
  it('cuts a frame torn midway and keeps the earlier pending batch and the committed point', async () => {
    const h = await buildHistory();
    const full = (await stat(segmentPath())).size;
    await truncate(segmentPath(), h.before4 + Math.floor((full - h.before4) / 2));
    const { log, lines } = capturingLog();

    const store = await BlockStore.open({ dir: fx.storeDir, log });
    await expectIntact(appOf(store), h);
    expect((await stat(segmentPath())).size).toBe(h.before4);
    expect(lines.some((l) => l.level === 40 && String(l.msg).includes('torn frame'))).toBe(true);

    // The agent resends batch 4 after the crash: it is stored, not taken for a duplicate.
    const app = appOf(store);
    expect(await append(fx, app, 4, [{ volume: h.v.disk, block: 3 }])).toEqual({
      duplicate: false,
    });
    await store.close();
  });

  it('cuts garbage appended after the last frame', async () => {
    const h = await buildHistory();
    const full = (await stat(segmentPath())).size;
    await appendFile(segmentPath(), Buffer.from('LSG1\x01garbage that is no frame'));
    const store = await BlockStore.open({ dir: fx.storeDir });
    const app = appOf(store);
    expect(app.stats().pendingSeqs).toEqual([3, 4]);
    expect((await stat(segmentPath())).size).toBe(full);
    expect(await snapshot(app)).toEqual(h.committed);
    await store.close();
  });

  it('drops a last frame whose checksum does not match', async () => {
    const h = await buildHistory();
    const bytes = await readFile(segmentPath());
    bytes[bytes.length - 10] = (bytes[bytes.length - 10] ?? 0) ^ 0xff;
    await writeFile(segmentPath(), bytes);
    const store = await BlockStore.open({ dir: fx.storeDir });
    await expectIntact(appOf(store), h);
    await store.close();
  });

  it('leaves damage inside the log in place and appends to a new segment', async () => {
    const h = await buildHistory();
    const full = (await stat(segmentPath())).size;
    const bytes = await readFile(segmentPath());
    bytes[h.before4 - 100] = (bytes[h.before4 - 100] ?? 0) ^ 0xff; // inside batch 3; batch 4 follows
    await writeFile(segmentPath(), bytes);
    const { log, lines } = capturingLog();
    const store = await BlockStore.open({ dir: fx.storeDir, log });
    const app = appOf(store);
    expect((await stat(segmentPath())).size).toBe(full);
    expect(lines.some((l) => l.level === 40 && String(l.msg).includes('damaged frame'))).toBe(true);
    expect(await snapshot(app)).toEqual(h.committed);
    await append(fx, app, 3, [{ volume: h.v.disk, block: 2 }]);
    expect(await readdir(join(appDir(), 'segments'))).toEqual(['00000001.seg', '00000002.seg']);
    await store.close();
  });

  it('refuses a tampered point index with store_corrupt naming the file', async () => {
    await buildHistory();
    const idx = join(appDir(), 'points', '1.idx');
    const bytes = await readFile(idx);
    bytes[20] = (bytes[20] ?? 0) ^ 1;
    await writeFile(idx, bytes);
    const store = await BlockStore.open({ dir: fx.storeDir });
    const err = await appOf(store)
      .pointEntries(1, 'disk')
      .catch((e: unknown) => e);
    expect(isDrError(err, 'store_corrupt')).toBe(true);
    expect(String(err)).toContain(idx);
    expect(String(err)).toContain('To resolve');

    await writeFile(idx, bytes.subarray(0, bytes.length - 5));
    await expect(appOf(store).pointEntries(1, 'disk')).rejects.toThrow(/1\.idx is \d+ bytes/);
    await store.close();
  });

  it('removes temp files and indexes of commits that never reached the catalog', async () => {
    const h = await buildHistory();
    await writeFile(join(appDir(), 'catalog.json.tmp-123-456'), '{"half":');
    await writeFile(join(appDir(), 'points', '2.idx'), 'an index the catalog never named');
    const store = await BlockStore.open({ dir: fx.storeDir });
    expect(await readdir(appDir())).toEqual(['catalog.json', 'points', 'segments']);
    expect(await readdir(join(appDir(), 'points'))).toEqual(['1.idx']);
    const app = appOf(store);
    const p = await app.commitPoint({ upToSeq: 4, label: 'fuzzy', volumes: volumesAt(h.v) });
    expect(p.id).toBe(2);
    await store.close();
  });
});
