// Fenced chunks against a real Ceph RGW: a holder stalled past its lease in the middle of an upload, another gateway taking the app over and committing points, the stale one waking up and uploading at the same offsets: every point of the new holder restores byte-exact from the bucket alone, the stale one commits nothing, and the next collection deletes what it wrote.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { DrError } from '../../core/errors.js';
import { BucketApp } from '../../replicator/gateway/bucket-reader.js';
import {
  chainsIn,
  chunksOf,
  followChains,
  indexesOf,
} from '../../replicator/gateway/chunk-chains.js';
import type { AppReplica } from '../../replicator/gateway/gateway-store.js';
import { ObjectBucket } from '../../replicator/gateway/object-bucket.js';
import { ObjectStore } from '../../replicator/gateway/object-store.js';
import { cephUnavailable, type TestCeph, useCephBucket } from '../helpers/ceph-s3.js';
import { missingFeature } from '../helpers/skip.js';
import { waitFor } from '../helpers/wait-for.js';
import {
  APP,
  BLOCK,
  makeBatch,
  makeFixture,
  plaintexts,
  recordsVia,
  volumesAt,
} from '../unit/replicator/gateway/store-fixture.js';

const BUCKET = 'lifeboat-fencing';

/** A bucket whose segment chunk PUTs wait while `stall` is armed: a gateway paused mid-upload. */
class StallingBucket extends ObjectBucket {
  held = 0;
  #gate: Promise<void> | undefined;
  #release: (() => void) | undefined;
  stall(): void {
    this.#gate = new Promise((resolve) => {
      this.#release = resolve;
    });
  }
  wake(): void {
    this.#release?.();
    this.#gate = undefined;
  }
  override async put(relative: string, body: Buffer): Promise<void> {
    const gate = this.#gate;
    if (gate && relative.includes('/segments/')) {
      this.held++;
      await gate;
    }
    return super.put(relative, body);
  }
}

describe.skipIf(missingFeature(cephUnavailable(), 'object store on Ceph'))(
  'object store: a holder stalled past its lease',
  () => {
    const cephOf = useCephBucket(BUCKET);
    let ceph: TestCeph;
    beforeAll(() => {
      ceph = cephOf();
    });

    it('never lets the stale holder’s chunks or indexes into a point; the next collection deletes them', async () => {
      const fx = await makeFixture();
      const prefix = `run-${randomBytes(4).toString('hex')}`;
      const root = await mkdtemp(join(tmpdir(), 'lifeboat-fencing-'));
      const where = { bucket: BUCKET, prefix, endpoint: ceph.endpoint };
      const stalling = new StallingBucket(where);
      const plain = new ObjectBucket(where);
      const opened: ObjectStore[] = [];
      /** Which gateway holds the app's lease now; each checks it before a write, as with Redis. */
      let holder = 'A';
      const guard = (me: string) => async () => {
        if (holder !== me)
          throw new DrError(`gateway ${me} no longer holds ${APP}`, { code: 'lease_lost' });
      };
      try {
        // Small segments: A's stalled upload spans new segments, the numbers B starts its own at.
        const open = (dir: string, bucket: ObjectBucket) =>
          ObjectStore.open({ dir: join(root, dir), bucket, leased: true, segmentBytes: 32 * 1024 });
        const a = await open('a', stalling);
        opened.push(a);
        const onA = await a.adopt(APP, guard('A'), 1);
        const [disk] = await onA.registerVolumes([
          { name: 'disk', blockSize: BLOCK, size: 64 * BLOCK, wrappedKey: fx.wrap('disk') },
        ]);
        if (!disk) throw new Error('no volume registered');
        /** The newest plaintext of each block, as the agent wrote it. */
        const truth = new Map<number, Buffer>();
        const batch = async (on: AppReplica, seq: number, blocks: number[], keep = true) => {
          const b = makeBatch(
            fx,
            seq,
            blocks.map((block) => ({ volume: disk, block })),
          );
          await on.appendBatch(seq, b.bytes, b.decoded);
          if (keep) for (const w of b.written) truth.set(w.block, w.plain);
        };
        const commit = (on: AppReplica, upToSeq: number) =>
          on.commitPoint({ upToSeq, label: 'fuzzy', volumes: volumesAt({ disk }) });
        for (let seq = 1; seq <= 4; seq++) await batch(onA, seq, [seq, seq + 8]);
        await commit(onA, 4);
        const points = new Map<number, Map<number, Buffer>>([[1, new Map(truth)]]);

        // A stalls in the middle of its next upload (a GC pause, SIGSTOP) past its lease.
        stalling.stall();
        for (let seq = 5; seq <= 16; seq++) await batch(onA, seq, [seq + 20, seq + 40], false);
        const staleCommit = commit(onA, 16).then(
          () => 'committed',
          (err: DrError) => err.code,
        );
        await waitFor(
          'gateway A to stall in a chunk upload',
          async () => stalling.held > 0,
          60_000,
        );

        // Its lease lapses: B takes the app over (a newer token) and commits two points.
        holder = 'B';
        const b = await open('b', plain);
        opened.push(b);
        const onB = await b.adopt(APP, guard('B'), 2);
        let seq = onB.committedSeq;
        for (let p = 2; p <= 3; p++) {
          for (let i = 0; i < 3; i++) await batch(onB, ++seq, [p * 3 + i, 40 + i]);
          const point = await commit(onB, seq);
          points.set(point.id, new Map(truth));
        }
        expect([...points.keys()]).toEqual([1, 2, 3]);

        // A wakes up and uploads what it held, at the offsets B wrote: beside B's chunks, not over.
        stalling.wake();
        expect(await staleCommit).toBe('lease_lost');
        // A's later segments have the numbers B's new ones took: without tokens, one key each.
        const chunks = await chunksOf(plain, APP);
        const byPlace = new Map<string, Set<number>>();
        for (const c of chunks) {
          const place = `${c.segment}/${c.offset}`;
          byPlace.set(place, (byPlace.get(place) ?? new Set()).add(c.token));
        }
        const clash = [...byPlace.values()].some((tokens) => tokens.has(1) && tokens.has(2));
        expect(clash, 'A wrote a chunk where B wrote one').toBe(true);

        // Every point of the new holder, from the bucket alone, byte-exact.
        const reader = (await BucketApp.load(plain, APP)) as BucketApp;
        expect(reader.points().map((p) => p.id)).toEqual([1, 2, 3]);
        const records = recordsVia(reader);
        for (const [id, want] of points) {
          const got = await plaintexts(fx, records, disk, await reader.pointEntries(id, 'disk'));
          expect(got.size, `point ${id}`).toBe(want.size);
          for (const [block, bytes] of want)
            expect(got.get(block)?.equals(bytes), `point ${id} block ${block}`).toBe(true);
        }

        // The stale chunks are in the bucket until B's next collection, then gone.
        const strays = async () => {
          const catalog = (await plain.get(`apps/${APP}/catalog.json`)) as Buffer;
          return followChains(await chunksOf(plain, APP), chainsIn(catalog, 'catalog')).off.length;
        };
        expect(await strays()).toBeGreaterThan(0);
        await onB.collectGarbage();
        expect(await strays()).toBe(0);
        expect((await indexesOf(plain, APP)).map((i) => i.token)).toEqual([2, 2, 2]);
      } finally {
        stalling.wake();
        for (const s of opened) await s.close().catch(() => undefined);
        await fx.cleanup();
        await rm(root, { recursive: true, force: true });
      }
    }, 300_000);
  },
);
