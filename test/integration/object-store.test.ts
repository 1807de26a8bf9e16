// The gateway's object store against a real Ceph RGW: points in the bucket before their commit is acknowledged, a new machine serving every point, a dead endpoint failing commits (never losing them).
import { randomBytes } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { homePaths } from '../../core/home.js';
import { createGateway, type Gateway } from '../../replicator/gateway/gateway-server.js';
import { ObjectBucket } from '../../replicator/gateway/object-bucket.js';
import { ObjectStore } from '../../replicator/gateway/object-store.js';
import { tlsServerOptions } from '../../replicator/transport/tls-options.js';
import { cephUnavailable, s3Home, type TestCeph, useCephBucket } from '../helpers/ceph-s3.js';
import { dr, scribble, testHome, updateConfig, writeImage } from '../helpers/lifeboat-home.js';
import { startDr, stopAll } from '../helpers/processes.js';
import { restoreAndVerify } from '../helpers/restore.js';
import { missingFeature } from '../helpers/skip.js';
import { waitFor } from '../helpers/wait-for.js';

const quiet = { DR_LOG_LEVEL: 'silent' };
const BUCKET = 'lifeboat-test';

describe.skipIf(missingFeature(cephUnavailable(), 'object store on Ceph'))(
  'object store on Ceph RGW',
  () => {
    const cephOf = useCephBucket(BUCKET);
    let ceph: TestCeph;
    beforeAll(() => {
      ceph = cephOf();
    });

    /** A gateway over the object store, as `dr gateway` opens it. */
    async function objectGateway(home: string, storeDir: string): Promise<Gateway> {
      const { readConfig } = await import('../../core/config.js');
      const c = await readConfig(home, {});
      if (!c.objectStore) throw new Error('the test home has no object store');
      const store = await ObjectStore.open({
        dir: storeDir,
        bucket: new ObjectBucket({ ...c.objectStore, endpoint: ceph.endpoint }),
      });
      return createGateway({
        store,
        listen: c.gateway.listen,
        tls: tlsServerOptions(homePaths(home)),
        retention: c.retention,
        minFreeSpace: 0,
      });
    }

    it('a new gateway on an empty machine serves every point byte-exact from the bucket; only ids and ciphertext are in it', async () => {
      const t = await testHome();
      const prefix = `run-${randomBytes(4).toString('hex')}`;
      try {
        await updateConfig(t.home, (doc) =>
          doc.setIn(['gateway', 'store'], `s3://${BUCKET}/${prefix}`),
        );
        const a = join(t.dir, 'a.img');
        await writeImage(a, 6 * 1024 * 1024 + 4096, 3);
        expect((await dr(['--home', t.home, 'app', 'add', 'web', '--volume', `a=${a}`])).code).toBe(
          0,
        );
        const firstDir = join(t.dir, 'machine-1');
        let g = await objectGateway(t.home, firstDir);
        const images: Buffer[] = [];
        for (let i = 0; i < 3; i++) {
          if (i > 0) await scribble(a, 30);
          const r = await dr(
            ['--home', t.home, 'agent', '--app', 'web', '--once', '--json'],
            quiet,
          );
          expect(r.err).toBe('');
          expect(JSON.parse(r.out).point.id).toBe(i + 1);
          images.push(await readFile(a));
        }
        await g.close();

        // Ids only in the names; no 4 KiB piece of the volume in any object.
        const bucket = new ObjectBucket({ bucket: BUCKET, prefix, endpoint: ceph.endpoint });
        const objects = await bucket.list('');
        expect(objects.length).toBeGreaterThan(3);
        for (const { key } of objects)
          expect(key).toMatch(
            /^apps\/web\/(catalog\.json|points\/\d+\.idx|segments\/\d{8}\/\d{12})$/,
          );
        const probe = (images[2] as Buffer).subarray(65536, 65536 + 4096);
        for (const { key } of objects) {
          const body = (await bucket.get(key)) as Buffer;
          expect(body.includes(probe)).toBe(false);
        }
        bucket.close();

        // The DR machine is lost: its folder is gone. A new one starts from the bucket alone.
        await rm(firstDir, { recursive: true, force: true });
        g = await objectGateway(t.home, join(t.dir, 'machine-2'));
        const points = JSON.parse((await dr(['--home', t.home, 'points', 'web', '--json'])).out);
        expect(points.map((p: { id: number }) => p.id)).toEqual([1, 2, 3]);
        for (let id = 1; id <= 3; id++) {
          await restoreAndVerify(t.home, {
            app: 'web',
            point: id,
            volume: 'a',
            to: join(t.dir, `a-${id}.img`),
            expected: images[id - 1] as Buffer,
          });
        }
        // And replication goes on into the same bucket from the new machine.
        await scribble(a, 10);
        const next = await dr(
          ['--home', t.home, 'agent', '--app', 'web', '--once', '--json'],
          quiet,
        );
        expect(next.code, next.err).toBe(0);
        expect(JSON.parse(next.out).point.id).toBe(4);
        const out4 = join(t.dir, 'a-4.img');
        const r4 = await dr(
          ['--home', t.home, 'restore', 'web', '--point', '4', '--volume', 'a', '--to', out4],
          quiet,
        );
        expect(r4.code, r4.err).toBe(0);
        expect((await readFile(out4)).equals(await readFile(a))).toBe(true);
        await g.close();
      } finally {
        await t.cleanup();
      }
    }, 300_000);

    it('with radosgw killed (-9) a point is committed locally but not acknowledged until the bucket holds it', async () => {
      const t = await testHome();
      const prefix = `run-${randomBytes(4).toString('hex')}`;
      const pointsIn = async (catalog: Buffer | undefined) =>
        catalog ? (JSON.parse(catalog.toString('utf8')).points as unknown[]).length : 0;
      const bucket = new ObjectBucket({ bucket: BUCKET, prefix, endpoint: ceph.endpoint });
      let rgwDown = false;
      try {
        await updateConfig(t.home, (doc) =>
          doc.setIn(['gateway', 'store'], `s3://${BUCKET}/${prefix}`),
        );
        const a = join(t.dir, 'a.img');
        await writeImage(a, 2 * 1024 * 1024, 4);
        expect((await dr(['--home', t.home, 'app', 'add', 'db', '--volume', `a=${a}`])).code).toBe(
          0,
        );
        const firstDir = join(t.dir, 'machine-1');
        let g = await objectGateway(t.home, firstDir);
        const first = await dr(
          ['--home', t.home, 'agent', '--app', 'db', '--once', '--json'],
          quiet,
        );
        expect(JSON.parse(first.out).point.id).toBe(1);

        await ceph.kill9('rgw');
        rgwDown = true;
        await scribble(a, 20);
        let acknowledged = false;
        const cycle = dr(
          ['--home', t.home, 'agent', '--app', 'db', '--once', '--json'],
          quiet,
        ).then((r) => {
          acknowledged = true;
          return r;
        });
        // The gateway's local log has point 2; the agent has no answer yet.
        await waitFor(
          "point 2 in the gateway's local catalog",
          async () =>
            (await pointsIn(await readFile(join(firstDir, 'apps', 'db', 'catalog.json')))) === 2,
          120_000,
        );
        expect(acknowledged).toBe(false);
        await ceph.start('rgw');
        rgwDown = false;
        const again = await cycle;
        expect(again.code, again.err).toBe(0);
        expect(JSON.parse(again.out).point.id).toBe(2);
        expect(await pointsIn(await bucket.get('apps/db/catalog.json'))).toBe(2);
        const image = await readFile(a);
        await g.close();

        // Whatever point the gateway acknowledged is in the bucket: a new machine restores it.
        await rm(firstDir, { recursive: true, force: true });
        g = await objectGateway(t.home, join(t.dir, 'machine-2'));
        const out = join(t.dir, 'restored.img');
        const r = await dr(
          ['--home', t.home, 'restore', 'db', '--point', '2', '--volume', 'a', '--to', out],
          quiet,
        );
        expect(r.code, r.err).toBe(0);
        expect((await readFile(out)).equals(image)).toBe(true);
        await g.close();
      } finally {
        if (rgwDown) await ceph.start('rgw');
        bucket.close();
        await t.cleanup();
      }
    }, 300_000);

    it('dr gateway (init --store s3://…) killed -9 between a local commit and its upload uploads it on restart, in order', async () => {
      const { dir, home, prefix } = await s3Home(BUCKET);
      const bucket = new ObjectBucket({ bucket: BUCKET, prefix, endpoint: ceph.endpoint });
      const env = { ...ceph.env, DR_HOME: home };
      let rgwDown = false;
      try {
        const a = join(dir, 'a.img');
        await writeImage(a, 3 * 1024 * 1024, 5);
        expect((await dr(['--home', home, 'app', 'add', 'shop', '--volume', `a=${a}`])).code).toBe(
          0,
        );
        let gateway = startDr(['gateway'], env);
        await gateway.waitFor(/gateway listening on .*s3:\/\//, 60_000);
        const first = await dr(
          ['--home', home, 'agent', '--app', 'shop', '--once', '--json'],
          quiet,
        );
        expect(JSON.parse(first.out).point.id).toBe(1);

        await ceph.kill9('rgw');
        rgwDown = true;
        await scribble(a, 20);
        const cycle = dr(['--home', home, 'agent', '--app', 'shop', '--once', '--json'], quiet);
        const local = join(home, 'store', 'apps', 'shop', 'catalog.json');
        await waitFor(
          "point 2 in the gateway's local catalog",
          async () => JSON.parse(await readFile(local, 'utf8')).points.length === 2,
          120_000,
        );
        await gateway.kill9();
        await ceph.start('rgw');
        rgwDown = false;
        // The bucket still has point 1 only; the restarted gateway uploads point 2 before it listens.
        expect(
          JSON.parse(((await bucket.get('apps/shop/catalog.json')) as Buffer).toString()).points,
        ).toHaveLength(1);
        gateway = startDr(['gateway'], env);
        await gateway.waitFor(/gateway listening/, 120_000);
        expect(
          JSON.parse(((await bucket.get('apps/shop/catalog.json')) as Buffer).toString()).points,
        ).toHaveLength(2);
        const again = await cycle;
        expect(again.code, again.err).toBe(0);
        expect(JSON.parse(again.out).point.id).toBe(2);
        const image = await readFile(a);
        await gateway.stop();

        // The home's store folder lost: the gateway fetches it back and restores point 2 exactly.
        await rm(join(home, 'store'), { recursive: true, force: true });
        gateway = startDr(['gateway'], env);
        await gateway.waitFor(/gateway listening/, 120_000);
        const out = join(dir, 'restored.img');
        const r = await dr(
          ['--home', home, 'restore', 'shop', '--point', '2', '--volume', 'a', '--to', out],
          quiet,
        );
        expect(r.code, r.err).toBe(0);
        expect((await readFile(out)).equals(image)).toBe(true);
        await gateway.stop();
      } finally {
        if (rgwDown) await ceph.start('rgw');
        await stopAll();
        bucket.close();
        await rm(dir, { recursive: true, force: true });
      }
    }, 300_000);
  },
);
