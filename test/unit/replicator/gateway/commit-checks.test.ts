import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isDrError } from '../../../../core/errors.js';
import type { PointRecord } from '../../../../replicator/crypto/point-record.js';
import { BlockStore } from '../../../../replicator/gateway/block-store.js';
import { APP, append, type Fixture, makeFixture, registerTwo, volumesAt } from './store-fixture.js';

let fx: Fixture;
beforeEach(async () => {
  fx = await makeFixture();
});
afterEach(async () => {
  await fx.cleanup();
});

const record = (over: Partial<PointRecord>, volumes: PointRecord['volumes']): PointRecord => ({
  v: 1,
  app: APP,
  id: 1,
  seqFrom: 1,
  seqTo: 2,
  time: '2026-01-01T00:00:00.000Z',
  label: 'fuzzy',
  volumes,
  prev: null,
  ...over,
});

describe('AppStore commits: only received ranges, only the next point', () => {
  it('refuses a point up to a batch it never received', async () => {
    const store = await BlockStore.open({ dir: fx.storeDir });
    const app = await store.ensureApp(APP);
    const v = await registerTwo(fx, app);
    await append(fx, app, 1, [{ volume: v.disk, block: 0 }]);
    await expect(
      app.commitPoint({ upToSeq: 1e15, label: 'fuzzy', volumes: volumesAt(v) }),
    ).rejects.toThrow(/batches were received only up to 1/);
    await expect(
      app.commitPoint({ upToSeq: 2, label: 'fuzzy', volumes: volumesAt(v) }),
    ).rejects.toThrow(/received only up to 1/);
    expect(app.points()).toEqual([]);
    await store.close();
  });

  it('keeps the signed record, refuses one for another point, and takes a resent commit once', async () => {
    const store = await BlockStore.open({ dir: fx.storeDir });
    const app = await store.ensureApp(APP);
    const v = await registerTwo(fx, app);
    await append(fx, app, 1, [{ volume: v.disk, block: 0 }]);
    await append(fx, app, 2, [{ volume: v.disk, block: 1 }]);
    const volumes = Object.fromEntries(
      Object.entries(volumesAt(v)).map(([n, x]) => [n, { size: x.size, digest: x.digest }]),
    );
    const commit = (r: PointRecord, sig = 'ab'.repeat(32)) =>
      app.commitPoint({
        upToSeq: r.seqTo,
        label: r.label,
        time: new Date(r.time),
        volumes: r.volumes,
        signed: { record: r, sig },
      });
    for (const wrong of [{ id: 2 }, { seqFrom: 2 }, { app: 'other' }]) {
      const err = await commit(record(wrong, volumes)).catch((e: unknown) => e);
      expect(isDrError(err, 'point_conflict')).toBe(true);
    }
    const p = await commit(record({}, volumes));
    expect(p.record).toEqual(record({}, volumes));
    const again = await commit(record({}, volumes));
    expect(again.id).toBe(p.id);
    expect(app.points()).toHaveLength(1);
    await store.close();
    const reopened = await BlockStore.open({ dir: fx.storeDir });
    expect(reopened.app(APP)?.points()[0]?.sig).toBe('ab'.repeat(32));
    await reopened.close();
  });
});
