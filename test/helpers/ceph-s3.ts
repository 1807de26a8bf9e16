/** A throwaway Ceph S3 endpoint (scripts/ceph-s3.sh) for the object-store tests; they skip with the reason where it cannot run. */
import { execFile, spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';

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
