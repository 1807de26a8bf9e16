// Several gateways on one bucket (Ceph RGW) with app leases in a real Redis: a gateway that lost an app's lease cannot commit for it (the lease check, and the catalog's conditional write behind it), redirects and their loops, and the bad set-ups a user meets.
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import { readConfig } from '../../core/config.js';
import { homePaths } from '../../core/home.js';
import { silentLog } from '../../core/log.js';
import { GatewayLeases } from '../../replicator/gateway/gateway-leases.js';
import { createGateway, type Gateway } from '../../replicator/gateway/gateway-server.js';
import { claimBucketKek, LeasedStore } from '../../replicator/gateway/leased-store.js';
import { ObjectBucket } from '../../replicator/gateway/object-bucket.js';
import { ObjectStore } from '../../replicator/gateway/object-store.js';
import { GatewayClient } from '../../replicator/transport/gateway-client.js';
import { tlsClientOptions, tlsServerOptions } from '../../replicator/transport/tls-options.js';
import { cephUnavailable, type TestCeph, useCephAndRedis } from '../helpers/ceph-s3.js';
import { dr, freePort, testHome, updateConfig, writeImage } from '../helpers/lifeboat-home.js';
import { redisUnavailable, type TestRedis } from '../helpers/redis-server.js';
import { missingFeature } from '../helpers/skip.js';

const quiet = { DR_LOG_LEVEL: 'silent' };
const BUCKET = 'lifeboat-shared';

describe.skipIf(
  missingFeature(cephUnavailable() ?? redisUnavailable(), 'shared gateways on Ceph and Redis'),
)('several gateways on one bucket', () => {
  const servers = useCephAndRedis(BUCKET);
  let ceph: TestCeph;
  let redis: TestRedis;
  const closers: Array<() => Promise<unknown> | unknown> = [];

  beforeAll(() => {
    ({ ceph, redis } = servers());
  });

  afterAll(async () => {
    for (const close of closers.reverse()) await close();
  }, 120_000);

  /** A shared gateway as `dr gateway` opens it with gateway.shared, in this process. */
  async function sharedGateway(home: string, storeDir: string, namespace: string) {
    const c = await readConfig(home, {});
    if (!c.objectStore) throw new Error('the test home has no object store');
    const port = await freePort();
    const connection = new Redis(redis.url);
    const objects = await ObjectStore.open({
      dir: storeDir,
      bucket: new ObjectBucket({ ...c.objectStore, endpoint: ceph.endpoint }),
      leased: true,
    });
    const store = await LeasedStore.open(
      objects,
      (onLost) =>
        new GatewayLeases({ redis: connection, namespace, address: `127.0.0.1:${port}`, onLost }),
      silentLog,
    );
    const gateway: Gateway = await createGateway({
      store,
      listen: `127.0.0.1:${port}`,
      tls: tlsServerOptions(homePaths(home)),
      retention: c.retention,
      minFreeSpace: 0,
      placement: store,
    });
    closers.push(async () => {
      await gateway.close().catch(() => undefined); // closed by the test already
      connection.disconnect();
    });
    return { gateway, store, address: `127.0.0.1:${port}` };
  }

  async function sharedHome() {
    const t = await testHome();
    closers.push(() => t.cleanup());
    const prefix = `run-${randomBytes(4).toString('hex')}`;
    await updateConfig(t.home, (doc) => {
      doc.setIn(['gateway', 'store'], `s3://${BUCKET}/${prefix}`);
      doc.setIn(['gateway', 'shared'], true);
    });
    return { ...t, prefix, namespace: `test:${prefix}` };
  }

  it('a gateway whose lease was taken cannot commit: refused by the lease check, and by the catalog write when Redis wrongly says it still holds it', async () => {
    const t = await sharedHome();
    const a = await sharedGateway(t.home, join(t.dir, 'gw-a'), t.namespace);
    const b = await sharedGateway(t.home, join(t.dir, 'gw-b'), t.namespace);
    await updateConfig(t.home, (doc) => doc.setIn(['gateway', 'address'], [a.address, b.address]));
    const img = join(t.dir, 'a.img');
    await writeImage(img, 2 * 1024 * 1024, 7);
    expect((await dr(['--home', t.home, 'app', 'add', 'web', '--volume', `a=${img}`])).code).toBe(
      0,
    );
    const first = await dr(['--home', t.home, 'agent', '--app', 'web', '--once', '--json'], quiet);
    expect(first.code, first.err).toBe(0);
    expect(a.store.leases.held()).toEqual(['web']);
    const stale = a.store.app('web');
    if (!stale) throw new Error('gateway A does not serve web');

    // A pause sent to B is redirected to A, which serves web; B reads A's points from the bucket.
    const viaB = new GatewayClient({
      address: b.address,
      tls: tlsClientOptions(homePaths(t.home), '127.0.0.1'),
    });
    closers.push(() => viaB.close());
    expect((await viaB.setProtection('web', { state: 'paused', by: 'alice' })).state).toBe(
      'paused',
    );
    expect(a.gateway.statuses().find((x) => x.app === 'web')?.protection?.state).toBe('paused');
    expect(b.gateway.statuses().find((x) => x.app === 'web')).toBeUndefined();
    expect((await viaB.points('web')).map((p) => p.id)).toEqual([1]);
    expect(b.store.leases.held()).toEqual([]);
    await viaB.setProtection('web', { state: 'protected', from: 'paused', by: 'alice' });

    // A's lease lapses behind its back (a long pause): B takes the app and claims its catalog.
    const control = new Redis(redis.url);
    closers.push(() => control.disconnect());
    const key = `${t.namespace}:lease:web`;
    const leaseOfA = (await control.get(key)) as string;
    await control.del(key);
    await b.store.ensureApp('web');
    const bucket = new ObjectBucket({ bucket: BUCKET, prefix: t.prefix, endpoint: ceph.endpoint });
    closers.push(() => bucket.close());
    const catalogOf = async () =>
      JSON.parse(((await bucket.get('apps/web/catalog.json')) as Buffer).toString('utf8'));
    const claimed = await catalogOf();
    expect(claimed.storeId).toBe(b.store.app('web')?.storeId);

    const extra = { name: 'extra', size: 65536, blockSize: 65536, wrappedKey: Buffer.alloc(41) };
    await expect(stale.registerVolumes([extra])).rejects.toMatchObject({ code: 'lease_lost' });
    expect(a.store.app('web')).toBeUndefined();

    // Redis wrongly gives A its old lease back: the catalog's conditional write still refuses A.
    await control.set(key, leaseOfA, 'PX', 60_000);
    expect((await a.store.leases.acquire('web')).ours).toBe(true);
    await expect(stale.registerVolumes([{ ...extra, name: 'extra2' }])).rejects.toMatchObject({
      code: 'lease_lost',
    });
    const after = await catalogOf();
    expect(after.storeId).toBe(claimed.storeId);
    expect(after.volumes.map((v: { name: string }) => v.name)).toEqual(['a']);
  }, 300_000);

  it('a redirect that comes back is refused as a loop; a bad address in the list is named', async () => {
    const t = await sharedHome();
    const a = await sharedGateway(t.home, join(t.dir, 'gw-a'), t.namespace);
    const control = new Redis(redis.url);
    closers.push(() => control.disconnect());
    // The lease names A's own address for another gateway (two gateways advertising one address).
    await control.set(
      `${t.namespace}:lease:web`,
      JSON.stringify({ id: 'another-gateway', address: a.address, token: 9 }),
      'PX',
      60_000,
    );
    const client = new GatewayClient({
      address: a.address,
      tls: tlsClientOptions(homePaths(t.home), '127.0.0.1'),
    });
    closers.push(() => client.close());
    await expect(
      client.heartbeat('web', { sessionId: 'x', sentAt: Date.now() } as never),
    ).rejects.toThrow(
      new RegExp(`redirect .* in a loop \\(${a.address} -> ${a.address}\\).*--advertise`),
    );

    // Written by hand: `dr` itself would refuse to save it.
    const file = homePaths(t.home).config;
    const doc = parseDocument(await readFile(file, 'utf8'));
    doc.setIn(['gateway', 'address'], [a.address, 'gateway-two']);
    await writeFile(file, doc.toString());
    const r = await dr(['--home', t.home, 'points', 'web'], quiet);
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/gateway\.address/);
    expect(r.err).toMatch(/HOST:PORT/);
  }, 300_000);

  it('refuses a bucket it cannot reach, a bucket served with another KEK, and a shared store without Redis', async () => {
    const t = await sharedHome();
    const env = { ...ceph.env, REDIS_URL: redis.url, DR_HOME: t.home, ...quiet };
    await updateConfig(t.home, (doc) => doc.setIn(['gateway', 'store'], 's3://no-such-bucket/x'));
    const missing = await dr(['--home', t.home, 'gateway'], env);
    expect(missing.code).not.toBe(0);
    expect(missing.err).toMatch(/no-such-bucket.*does not exist.*create the bucket first/);

    await updateConfig(t.home, (doc) =>
      doc.setIn(['gateway', 'store'], `s3://${BUCKET}/${t.prefix}`),
    );
    const closed = `http://127.0.0.1:${await freePort()}`;
    const unreachable = await dr(['--home', t.home, 'gateway'], {
      ...env,
      AWS_ENDPOINT_URL_S3: closed,
    });
    expect(unreachable.code).not.toBe(0);
    expect(unreachable.err).toMatch(/cannot reach the bucket.*check AWS_ENDPOINT_URL_S3/);

    const bucket = new ObjectBucket({ bucket: BUCKET, prefix: t.prefix, endpoint: ceph.endpoint });
    closers.push(() => bucket.close());
    await claimBucketKek(bucket, '00112233aabbccdd');
    const otherKek = await dr(['--home', t.home, 'gateway'], env);
    expect(otherKek.code).not.toBe(0);
    expect(otherKek.err).toMatch(/key encryption key 00112233aabbccdd/);
    expect(otherKek.err).toMatch(/same home/);

    const noRedis = { ...env, REDIS_URL: '' };
    const withoutRedis = await dr(['--home', t.home, 'gateway'], noRedis);
    expect(withoutRedis.code).not.toBe(0);
    expect(withoutRedis.err).toMatch(/gateway\.shared needs Redis/);
  }, 300_000);
});
