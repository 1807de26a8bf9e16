/** A throwaway Ceph S3 endpoint (scripts/ceph-s3.sh) for the object-store tests; they skip with the reason where it cannot run. */
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll } from 'vitest';
import { dr, freePort } from './lifeboat-home.js';
import { startRedis, type TestRedis } from './redis-server.js';

const run = promisify(execFile);
const script = resolve(import.meta.dirname, '../../scripts/ceph-s3.sh');

export interface TestCeph {
  /** AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION. */
  env: Record<string, string>;
  endpoint: string;
  createBucket: (name: string) => Promise<void>;
  /** kill -9 of one daemon, and its start again. */
  kill9: (daemon: 'rgw' | 'osd') => Promise<void>;
  start: (daemon: 'rgw' | 'osd') => Promise<void>;
  down: () => Promise<void>;
}

/** Why Ceph cannot run here, or undefined. */
export function cephUnavailable(): string | undefined {
  for (const tool of ['ceph-mon', 'ceph-osd', 'radosgw', 'radosgw-admin', 'ceph-authtool']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0)
      return `${tool} is not installed (apt-get install -y ceph-mon ceph-osd radosgw ceph-common python3-rados)`;
  }
  if (spawnSync('/usr/bin/python3', ['-c', 'import rados']).status !== 0)
    return 'python3-rados is not installed (apt-get install -y python3-rados)';
  if (process.getuid?.() !== 0) return 'the Ceph daemons here need root';
  return undefined;
}

/** Stops whatever of the daemons under `dir` runs (also after a start that failed halfway). */
export async function stopCeph(dir: string): Promise<void> {
  await run(script, ['down', dir], { timeout: 180_000 });
}

/** Starts one mon, one OSD and radosgw under `dir` (seconds); `down` stops them. */
export async function startCeph(dir: string): Promise<TestCeph> {
  const bounded = { timeout: 180_000 };
  await run(script, ['up', dir], bounded);
  const env: Record<string, string> = {};
  for (const line of (await readFile(join(dir, 's3.env'), 'utf8')).split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) env[line.slice(0, eq)] = line.slice(eq + 1);
  }
  const endpoint = env.AWS_ENDPOINT_URL_S3 as string;
  return {
    env,
    endpoint,
    createBucket: async (name) => {
      const client = new S3Client({
        endpoint,
        region: env.AWS_REGION as string,
        forcePathStyle: true,
        credentials: {
          accessKeyId: env.AWS_ACCESS_KEY_ID as string,
          secretAccessKey: env.AWS_SECRET_ACCESS_KEY as string,
        },
      });
      try {
        await client.send(new CreateBucketCommand({ Bucket: name }));
      } finally {
        client.destroy();
      }
    },
    kill9: async (daemon) => {
      await run(script, ['kill', dir, daemon], bounded);
    },
    start: async (daemon) => {
      await run(script, ['start', dir, daemon], bounded);
    },
    down: () => stopCeph(dir),
  };
}

/**
 * For a suite: Ceph started before its tests with `bucket` created, its AWS_* variables in this
 * process's environment (the SDK reads them there, as a real gateway does), all undone after.
 * Answers the endpoint once started.
 */
export function useCephBucket(bucket: string): () => TestCeph {
  const rig = useServers(bucket, false);
  return () => rig().ceph;
}

/**
 * useCephBucket with a Redis started beside Ceph (the shared gateways' leases). Both are stopped
 * after the suite's own afterAll hooks (vitest runs those last registered first), so a suite stops
 * its processes before the servers go.
 */
export function useCephAndRedis(bucket: string): () => { ceph: TestCeph; redis: TestRedis } {
  const rig = useServers(bucket, true);
  return () => {
    const { ceph, redis } = rig();
    if (!redis) throw new Error('Redis is not started (useCephAndRedis runs before the tests)');
    return { ceph, redis };
  };
}

function useServers(bucket: string, withRedis: boolean) {
  let ceph: TestCeph | undefined;
  let redis: TestRedis | undefined;
  let dir: string | undefined;
  const savedEnv = { ...process.env };
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-ceph-'));
    const [c, r] = await Promise.allSettled([
      startCeph(dir),
      withRedis ? startRedis() : Promise.resolve(undefined),
    ]);
    if (c.status === 'fulfilled') ceph = c.value;
    if (r.status === 'fulfilled') redis = r.value;
    if (c.status === 'rejected') throw c.reason;
    if (r.status === 'rejected') throw r.reason;
    Object.assign(process.env, c.value.env);
    await c.value.createBucket(bucket);
  }, 240_000);
  afterAll(async () => {
    for (const k of Object.keys(process.env)) if (!(k in savedEnv)) delete process.env[k];
    await redis?.stop();
    if (dir) {
      await stopCeph(dir); // also after a start that failed halfway
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);
  return (): { ceph: TestCeph; redis: TestRedis | undefined } => {
    if (!ceph) throw new Error('Ceph is not started (useCephBucket runs before the tests)');
    return { ceph, redis };
  };
}

/** A fresh home in a temp dir made by `dr init --store s3://BUCKET/PREFIX` (a new prefix each). */
export async function s3Home(
  bucket: string,
): Promise<{ dir: string; home: string; prefix: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'lifeboat-test-'));
  const home = join(dir, 'home');
  const prefix = `run-${randomBytes(4).toString('hex')}`;
  const gateway = `127.0.0.1:${await freePort()}`;
  const init = await dr([
    'init',
    '--home',
    home,
    '--gateway',
    gateway,
    '--store',
    `s3://${bucket}/${prefix}`,
  ]);
  if (init.code !== 0) throw new Error(`dr init --store failed: ${init.err}`);
  return { dir, home, prefix };
}
