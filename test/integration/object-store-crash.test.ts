// The object store's gateway killed -9 in the middle of an upload, against a real Ceph RGW: no acknowledged batch lost, every committed point byte-exact from the bucket alone, and no junk left (multipart uploads never completed, chunks past a gap).
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CreateMultipartUploadCommand,
  ListMultipartUploadsCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { beforeAll, describe, expect, it } from 'vitest';
import { chainOf, chunkKey, chunksOf } from '../../replicator/gateway/chunk-chains.js';
import { ObjectBucket } from '../../replicator/gateway/object-bucket.js';
import { ObjectStore } from '../../replicator/gateway/object-store.js';
import { cephUnavailable, s3Home, type TestCeph, useCephBucket } from '../helpers/ceph-s3.js';
import { dr, scribble, writeImage } from '../helpers/lifeboat-home.js';
import { startDr, stopAll } from '../helpers/processes.js';
import { restoreAndVerify } from '../helpers/restore.js';
import { missingFeature } from '../helpers/skip.js';
import { waitFor } from '../helpers/wait-for.js';

const quiet = { DR_LOG_LEVEL: 'silent' };
const BUCKET = 'lifeboat-crash';

describe.skipIf(missingFeature(cephUnavailable(), 'object store on Ceph'))(
  'object store: a gateway killed mid-upload',
  () => {
    const cephOf = useCephBucket(BUCKET);
    let ceph: TestCeph;
    beforeAll(() => {
      ceph = cephOf();
    });

    /** The multipart uploads under the store's prefix that the bucket still holds. */
    async function multipartUploads(bucket: ObjectBucket, prefix: string): Promise<string[]> {
      const out = await bucket.client.send(
        new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: `${prefix}/` }),
      );
      return (out.Uploads ?? []).map((u) => u.Key ?? '');
    }

    /** What a gateway killed mid-upload of a large object leaves: a multipart upload with a part in. */
    async function leaveMultipart(bucket: ObjectBucket, relative: string): Promise<void> {
      const Key = bucket.key(relative);
      const { UploadId } = await bucket.client.send(
        new CreateMultipartUploadCommand({ Bucket: BUCKET, Key }),
      );
      await bucket.client.send(
        new UploadPartCommand({
          Bucket: BUCKET,
          Key,
          UploadId,
          PartNumber: 1,
          Body: Buffer.alloc(5 * 1024 * 1024, 7),
        }),
      );
    }

    it('kill -9 during the initial upload, then restart: no acked batch lost, every point byte-exact from the bucket, no leftover multipart upload or orphan chunk', async () => {
      const { dir, home, prefix } = await s3Home(BUCKET);
      const bucket = new ObjectBucket({ bucket: BUCKET, prefix, endpoint: ceph.endpoint });
      const env = { ...ceph.env, DR_HOME: home };
      try {
        const a = join(dir, 'a.img');
        await writeImage(a, 96 * 1024 * 1024, 11);
        expect((await dr(['--home', home, 'app', 'add', 'shop', '--volume', `a=${a}`])).code).toBe(
          0,
        );
        let gateway = startDr(['gateway'], env);
        await gateway.waitFor(/gateway listening on .*s3:\/\//, 120_000);
        const first = dr(['--home', home, 'agent', '--app', 'shop', '--once', '--json'], quiet);
        // Segment bytes go up while batches arrive: kill the gateway once some are in the bucket
        // and before the point is committed.
        await waitFor(
          'segment chunks in the bucket',
          async () => (await chunksOf(bucket, 'shop')).length > 0,
          120_000,
        );
        const local = join(home, 'store', 'apps', 'shop', 'catalog.json');
        const pointsBefore = JSON.parse(await readFile(local, 'utf8')).points.length;
        await gateway.kill9();
        expect(pointsBefore, 'the gateway was killed before the point was committed').toBe(0);

        // What else an upload cut short may leave: a multipart upload never completed, and a
        // chunk past a gap in segment 1 (with bytes that are not the log's).
        await leaveMultipart(bucket, 'apps/shop/points/1.idx');
        const { ends } = chainOf(await chunksOf(bucket, 'shop'));
        const orphan = chunkKey('shop', 1, (ends.get(1) ?? 0) + 4096);
        await bucket.put(orphan, Buffer.alloc(4096, 0xee));
        expect(await multipartUploads(bucket, prefix)).toHaveLength(1);

        gateway = startDr(['gateway'], env);
        await gateway.waitFor(/gateway listening/, 120_000);
        expect(await multipartUploads(bucket, prefix)).toEqual([]);
        expect(chainOf(await chunksOf(bucket, 'shop')).orphans).toEqual([]);
        expect(gateway.output()).toMatch(/aborted multipart uploads an interrupted upload left/);
        expect(gateway.output()).toMatch(/deleted chunks an interrupted upload left/);

        // The agent's cycle went on against the restarted gateway and committed its point.
        const r1 = await first;
        expect(r1.code, r1.err).toBe(0);
        expect(JSON.parse(r1.out).point.id).toBe(1);
        const images = [await readFile(a)];
        await scribble(a, 200);
        const r2 = await dr(['--home', home, 'agent', '--app', 'shop', '--once', '--json'], quiet);
        expect(r2.code, r2.err).toBe(0);
        expect(JSON.parse(r2.out).point.id).toBe(2);
        images.push(await readFile(a));

        await gateway.stop();

        // The gateway machine lost: every committed point comes back byte-exact from the bucket.
        await rm(join(home, 'store'), { recursive: true, force: true });
        gateway = startDr(['gateway'], env);
        await gateway.waitFor(/gateway listening/, 120_000);
        for (const [i, expected] of images.entries()) {
          await restoreAndVerify(home, {
            app: 'shop',
            point: i + 1,
            volume: 'a',
            to: join(dir, `restored-${i + 1}.img`),
            expected,
          });
        }
        await gateway.stop();
      } finally {
        await stopAll();
        bucket.close();
        await rm(dir, { recursive: true, force: true });
      }
    }, 600_000);

    it("a collection aborts the app's leftover multipart uploads, never one this gateway has under way", async () => {
      const { dir, prefix } = await s3Home(BUCKET);
      const bucket = new ObjectBucket({
        bucket: BUCKET,
        prefix,
        endpoint: ceph.endpoint,
        partBytes: 5 * 1024 * 1024,
        requestsAtOnce: 1,
      });
      const store = await ObjectStore.open({ dir: join(dir, 'store'), bucket });
      try {
        const app = await store.ensureApp('shop');
        await leaveMultipart(bucket, 'apps/shop/points/7.idx');
        // Another app's upload is not this app's to abort.
        await leaveMultipart(bucket, 'apps/other/points/1.idx');
        // An upload of this gateway under way while the collection runs.
        const body = Buffer.alloc(64 * 1024 * 1024, 3);
        const putting = bucket.put('apps/shop/segments/00000001/000000000000', body);
        await waitFor(
          'the multipart upload under way',
          async () => (await multipartUploads(bucket, prefix)).length === 3,
          120_000,
        );
        await app.collectGarbage();
        expect(await multipartUploads(bucket, prefix)).toEqual(
          expect.arrayContaining([
            `${prefix}/apps/shop/segments/00000001/000000000000`,
            `${prefix}/apps/other/points/1.idx`,
          ]),
        );
        expect(await multipartUploads(bucket, prefix)).toHaveLength(2);
        await putting;
        const back = await bucket.get('apps/shop/segments/00000001/000000000000');
        expect(back?.equals(body)).toBe(true);
        expect(await multipartUploads(bucket, prefix)).toEqual([
          `${prefix}/apps/other/points/1.idx`,
        ]);
      } finally {
        await store.close();
        await rm(dir, { recursive: true, force: true });
      }
    }, 300_000);
  },
);
