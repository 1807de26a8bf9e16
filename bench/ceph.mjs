// A throwaway Ceph S3 endpoint for the object-store benchmarks (scripts/ceph-s3.sh): started under a
// folder with one bucket, its variables (AWS_ENDPOINT_URL_S3 and the generated keys) handed back.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { root } from './lib.mjs';

const script = join(root, 'scripts/ceph-s3.sh');

/** Starts Ceph under `dir` and creates `bucket`; the answer is the endpoint's variables. */
export async function startCephBucket(dir, bucket) {
  execFileSync(script, ['up', dir], { stdio: ['ignore', 'ignore', 'inherit'] });
  const env = Object.fromEntries(
    readFileSync(join(dir, 's3.env'), 'utf8')
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  const { S3Client, CreateBucketCommand } = await import('@aws-sdk/client-s3');
  const client = new S3Client({
    endpoint: env.AWS_ENDPOINT_URL_S3,
    region: env.AWS_REGION,
    forcePathStyle: true,
    credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY },
  });
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } finally {
    client.destroy();
  }
  return env;
}

/** Stops the Ceph started under `dir`. */
export function stopCeph(dir) {
  spawnSync(script, ['down', dir], { stdio: 'ignore' });
}
