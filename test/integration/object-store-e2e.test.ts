// `dr init --store s3://…` end to end against a real Ceph RGW: replicate, points, restore, verify, drill and failover (local provider) with every point in the bucket; and the bad inputs the gateway refuses in one line.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ObjectBucket } from '../../replicator/gateway/object-bucket.js';
import type { OperationResult } from '../../replicator/jobs/recovery-contract.js';
import {
  cephUnavailable,
  s3Home as initS3Home,
  type TestCeph,
  useCephBucket,
} from '../helpers/ceph-s3.js';
import { dr, freePort, scribble } from '../helpers/lifeboat-home.js';
import { startDr, stopAll } from '../helpers/processes.js';
import { killVolumeServers, recoveryEnv, servedAppArgs } from '../helpers/recovery-rig.js';
import { redisUnavailable, startRedis, type TestRedis } from '../helpers/redis-server.js';
import { restoreAndVerify } from '../helpers/restore.js';
import { missingFeature } from '../helpers/skip.js';
import { until } from '../helpers/wait-for.js';

const BUCKET = 'lifeboat-e2e';
const quiet = { DR_LOG_LEVEL: 'silent' };

describe.skipIf(
  missingFeature(cephUnavailable() ?? redisUnavailable(), 'dr init --store s3:// end to end'),
)('dr init --store s3://… end to end on Ceph RGW', () => {
  const cephOf = useCephBucket(BUCKET);
  let ceph: TestCeph;
  let redis: TestRedis;

  beforeAll(async () => {
    ceph = cephOf();
    redis = await startRedis();
  }, 120_000);

  afterAll(async () => {
    await redis?.stop();
  }, 120_000);

  /** A fresh home made by `dr init --store s3://BUCKET/PREFIX` (no credentials in dr.yaml). */
  async function s3Home(): Promise<{ dir: string; home: string; prefix: string }> {
    const made = await initS3Home(BUCKET);
    const yaml = await readFile(join(made.home, 'dr.yaml'), 'utf8');
    expect(yaml).toContain(`s3://${BUCKET}/${made.prefix}`);
    expect(yaml).not.toContain(ceph.env.AWS_SECRET_ACCESS_KEY as string);
    return made;
  }

  it('replicates, keeps points in the bucket, restores, verifies, drills and fails over', async () => {
    const { dir, home, prefix } = await s3Home();
    const { env: base } = recoveryEnv(home, redis.url);
    const env = { ...base, ...ceph.env };
    const bucket = new ObjectBucket({ bucket: BUCKET, prefix, endpoint: ceph.endpoint });
    try {
      const marker = `lifeboat-marker-${randomBytes(6).toString('hex')}`;
      const image = join(dir, 'web.img');
      const data = Buffer.alloc(512 * 1024);
      data.write(`${marker}\n`);
      randomBytes(128 * 1024).copy(data, 256 * 1024);
      await writeFile(image, data);
      const port = await freePort();
      const added = await dr(
        ['--home', home, ...servedAppArgs({ name: 'web', image, port, dir })],
        quiet,
      );
      expect(added.code, added.err).toBe(0);

      const gateway = startDr(['gateway'], env);
      await gateway.waitFor(/gateway listening on .*\(store s3:\/\//, 120_000);

      // Replicate: two points, the second after writes past the marker (its page is kept:
      // a scribble over it left the drill's server nothing to find, 1 run in 16).
      const images: Buffer[] = [];
      for (let i = 0; i < 2; i++) {
        if (i > 0) await scribble(image, 8, 4096);
        const r = await dr(['--home', home, 'agent', '--app', 'web', '--once', '--json'], quiet);
        expect(r.code, r.err).toBe(0);
        expect(JSON.parse(r.out).point.id).toBe(i + 1);
        images.push(await readFile(image));
      }
      // Both points are in the bucket's catalog: acknowledged means uploaded.
      const catalog = JSON.parse(
        ((await bucket.get('apps/web/catalog.json')) as Buffer).toString('utf8'),
      );
      expect(catalog.points.map((p: { id: number }) => p.id)).toEqual([1, 2]);

      const points = JSON.parse((await dr(['--home', home, 'points', 'web', '--json'])).out);
      expect(points.map((p: { id: number; label: string }) => [p.id, p.label])).toEqual([
        [1, 'app-consistent'],
        [2, 'app-consistent'],
      ]);
      for (const id of [1, 2]) {
        await restoreAndVerify(home, {
          app: 'web',
          point: id,
          volume: 'data',
          to: join(dir, `restored-${id}.img`),
          expected: images[id - 1] as Buffer,
        });
      }

      const worker = startDr(['worker', '--concurrency', '2'], env);
      await worker.waitFor(/worker ready/, 60_000);
      const drill = await dr(['drill', 'web', '--keep', '10m', '--wait', '--json'], env);
      expect(drill.code, drill.err).toBe(0);
      const drilled = JSON.parse(drill.out) as OperationResult & { ok: boolean };
      expect(drilled.ok).toBe(true);
      expect(drilled.point).toBe(2);
      expect(drilled.health.output).toContain(marker);
      expect(drilled.server.provider).toBe('local');
      // The drill's server is gone before the failover's takes the app's port: a delayed cleanup
      // (--keep 1s) could still hold it on a loaded machine, and the new server exited.
      const cleaned = await dr(['cleanup', drilled.opId, '--wait'], env);
      expect(cleaned.code, cleaned.err).toBe(0);

      const failover = await dr(['failover', 'web', '--wait', '--json'], env);
      expect(failover.code, failover.err).toBe(0);
      const failed = JSON.parse(failover.out) as OperationResult;
      expect(failed.mode).toBe('failover');
      expect(failed.point).toBe(2);
      expect(failed.health.output).toContain(marker);
      const status = JSON.parse((await dr(['status', 'web', '--json'], env)).out);
      expect(status.phase).toBe('paused');
      // Nothing about the operations went into the bucket but the app's own objects.
      for (const { key } of await bucket.list(''))
        expect(key).toMatch(
          /^apps\/web\/(catalog\.json|points\/\d+\.idx|segments\/\d{8}\/\d{12})$/,
        );
      expect(await worker.stop()).toBe(0);
      expect(await gateway.stop()).toBe(0);
    } finally {
      await stopAll();
      bucket.close();
      await killVolumeServers(dir);
      await rm(dir, { recursive: true, force: true });
    }
  }, 600_000);

  it('a running agent starts again by itself when its gateway machine is lost and a new one serves the bucket', async () => {
    const { dir, home } = await s3Home();
    const env = { ...ceph.env, DR_HOME: home };
    try {
      const image = join(dir, 'db.img');
      await writeFile(image, randomBytes(1024 * 1024));
      const added = await dr(['--home', home, 'app', 'add', 'db', '--volume', `a=${image}`], quiet);
      expect(added.code, added.err).toBe(0);
      let gateway = startDr(['gateway'], env);
      await gateway.waitFor(/gateway listening/, 120_000);
      const agent = startDr(
        ['agent', '--app', 'db', '--tracker', 'scan', '--interval', '300ms'],
        env,
      );
      await agent.waitFor(/recovery point committed/, 120_000);
      // The machine is lost: the gateway killed, its local folder gone; a new one starts empty.
      await gateway.kill9();
      await rm(join(home, 'store'), { recursive: true, force: true });
      gateway = startDr(['gateway'], env);
      await gateway.waitFor(/gateway listening/, 120_000);
      await scribble(image, 10);
      const written = await readFile(image);
      // Taken before the wait: the agent may cut its point before this test reads its log line.
      const since = Date.now();
      await agent.waitFor(/store was replaced; starting again against it/, 120_000);
      // It goes on by itself: a point taken after the writes holds them, byte-exact.
      const latest = await until(
        'a point cut after the writes, on the new gateway',
        async () => {
          const r = await dr(['--home', home, 'points', 'db', '--json']);
          const points = r.code === 0 ? (JSON.parse(r.out) as { id: number; time: string }[]) : [];
          return points.find((p) => Date.parse(p.time) > since);
        },
        120_000,
      );
      expect(agent.child.exitCode).toBe(null);
      const out = join(dir, 'restored.img');
      const r = await dr(
        [
          '--home',
          home,
          'restore',
          'db',
          '--point',
          String(latest.id),
          '--volume',
          'a',
          '--to',
          out,
        ],
        quiet,
      );
      expect(r.code, r.err).toBe(0);
      expect((await readFile(out)).equals(written)).toBe(true);
      expect(await agent.stop()).toBe(0);
      expect(await gateway.stop()).toBe(0);
    } finally {
      await stopAll();
      await rm(dir, { recursive: true, force: true });
    }
  }, 400_000);

  it('dr init refuses --store s3:// without a bucket, naming the remedy', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lifeboat-test-'));
    try {
      for (const bad of ['s3://', 's3:///prefix']) {
        const r = await dr(['init', '--home', join(dir, 'home'), '--store', bad]);
        expect(r.code).not.toBe(0);
        expect(r.err.trim().split('\n')).toHaveLength(1);
        expect(r.err).toContain('--store');
        expect(r.err).toMatch(/To resolve, .*s3:\/\/my-bucket/);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('dr gateway refuses to start, in one line with the remedy, on a missing bucket, wrong credentials or an endpoint that is down', async () => {
    const { dir, home } = await s3Home();
    try {
      const cases: { name: string; env: Record<string, string>; store?: string; line: RegExp }[] = [
        {
          name: 'wrong credentials',
          env: { ...ceph.env, AWS_SECRET_ACCESS_KEY: randomBytes(20).toString('hex') },
          line: /refused the credentials \(HTTP 403\)\. To resolve, check AWS_ACCESS_KEY_ID/,
        },
        {
          name: 'an endpoint that is down',
          env: { ...ceph.env, AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${await freePort()}` },
          line: /cannot reach .*To resolve, .*AWS_ENDPOINT_URL_S3/,
        },
        {
          name: 'a bucket that does not exist',
          env: ceph.env,
          store: 's3://no-such-bucket-here/x',
          line: /the bucket does not exist\. To resolve, create the bucket first/,
        },
      ];
      for (const c of cases) {
        if (c.store) {
          const { updateConfig } = await import('../../core/config.js');
          await updateConfig(home, (doc) => doc.setIn(['gateway', 'store'], c.store));
        }
        const g = startDr(['gateway'], { ...c.env, DR_HOME: home, DR_LOG_LEVEL: 'silent' });
        const code = await g.exited;
        const lines = g.output().trim().split('\n');
        expect(code, c.name).not.toBe(0);
        expect(lines, `${c.name}: ${g.output()}`).toHaveLength(1);
        expect(lines[0], c.name).toMatch(c.line);
        expect(g.output()).not.toContain(ceph.env.AWS_SECRET_ACCESS_KEY as string);
      }
    } finally {
      await stopAll();
      await rm(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
