/** The point view: read from the indexes, the latest kept and moved on by commits, dropped on GC. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { PointInfo } from '../../../../replicator/gateway/catalog.js';
import { type IndexEntry, writePointIndex } from '../../../../replicator/gateway/point-index.js';
import { PointView } from '../../../../replicator/gateway/point-view.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-view-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const entry = (block: number, seq: number): IndexEntry => ({
  volumeId: 1,
  block,
  seq,
  segment: 1,
  offset: seq * 100,
  length: 10,
  mac: Buffer.alloc(16, seq),
});
const point = (id: number): PointInfo => ({
  id,
  time: '2026-12-07T00:00:00.000Z',
  label: 'fuzzy',
  seqFrom: id,
  seqTo: id,
  volumes: {},
});

describe('PointView', () => {
  it('overlays the indexes up to a point, keeps the latest, and follows a commit', async () => {
    const path = (id: number) => join(dir, `${id}.idx`);
    await writePointIndex(path(1), 1, [entry(0, 1), entry(1, 1)]);
    await writePointIndex(path(2), 2, [entry(1, 2)]);
    const view = new PointView(path);
    const points = [point(1), point(2)];
    expect((await view.at(points, 1)).map((e) => e.seq)).toEqual([1, 1]);
    expect((await view.at(points, 2)).map((e) => e.seq)).toEqual([1, 2]);
    await rm(path(1)); // the latest is kept: no index is read again
    expect((await view.at(points, 2)).map((e) => e.seq)).toEqual([1, 2]);
    view.committed(2, 3, [entry(0, 3)]);
    expect((await view.at([...points, point(3)], 3)).map((e) => e.seq)).toEqual([3, 2]);
    view.forget();
    await expect(view.at([...points, point(3)], 3)).rejects.toThrow();
  });
});
