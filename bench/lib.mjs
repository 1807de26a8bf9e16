// Small helpers the benchmarks (and test/fixtures/replication-walkthrough.mjs) share: where the
// repository and `dr` are, a free loopback port, percentiles, a missing-tool check, child
// processes whose output can be waited on, `dr` run to its end, and random images and changes.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('..', import.meta.url));
export const bin = join(root, 'bin/dr.js');
export const say = (s) => process.stderr.write(`${s}\n`);

/** A TCP port free on 127.0.0.1 right now. */
export const freePort = () =>
  new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

/** CPU ticks of a process: its own, and with its reaped children (`self`: this process). */
export const cpuTicks = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  const own = Number(f[11]) + Number(f[12]); // utime + stime
  return { own, all: own + Number(f[13]) + Number(f[14]) }; // + cutime + cstime
};

/** Sends SIGTERM to a child process (unless it has exited) and resolves once it has exited. */
export const stopChild = (child) =>
  new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once('exit', resolve);
    child.kill('SIGTERM');
  });

/** The p-th percentile of xs (not sorted in place); undefined when xs is empty. */
export const pct = (xs, p) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

/** Exits with status 2 and the apt package to install when `cmd --version` cannot run. */
export function needCommand(label, cmd, pkg = cmd) {
  if (spawnSync(cmd, ['--version']).error) {
    say(`${label}: ${cmd} is missing. To resolve, run: apt-get install -y ${pkg}`);
    process.exit(2);
  }
}

/**
 * Starts a child with its stdout and stderr collected, and records it in `children` for the
 * caller to stop. waitFor(re) resolves once the output matches, and throws (with the output's
 * tail) when the child exits first or `ms` passes.
 */
export function startProcess(children, cmd, argv, env, name) {
  const child = spawn(cmd, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c) => (out += c));
  child.stderr.on('data', (c) => (out += c));
  children.push(child);
  return {
    child,
    out: () => out,
    waitFor: async (re, ms = 60_000) => {
      const until = Date.now() + ms;
      while (!re.test(out)) {
        if (Date.now() > until || child.exitCode !== null)
          throw new Error(`${name}: no ${re}:\n${out.slice(-2000)}`);
        await sleep(50);
      }
    },
  };
}

/**
 * A throwaway Ceph S3 endpoint under `dir` (scripts/ceph-s3.sh) with `bucket` created: its AWS_*
 * variables, and `down()` to stop it.
 */
export async function startCephBucket(dir, bucket) {
  const script = join(root, 'scripts/ceph-s3.sh');
  const down = () => spawnSync(script, ['down', dir], { stdio: 'ignore' });
  const up = spawnSync(script, ['up', dir], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (up.status !== 0) {
    down();
    throw new Error(`scripts/ceph-s3.sh up ${dir} failed (exit ${up.status})`);
  }
  const { readFileSync } = await import('node:fs');
  const env = Object.fromEntries(
    readFileSync(join(dir, 's3.env'), 'utf8')
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  const { CreateBucketCommand } = await import('@aws-sdk/client-s3');
  const client = await s3ClientFor(env);
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } finally {
    client.destroy();
  }
  return { env, down };
}

/** An S3 client on the endpoint and credentials of `env` (AWS_* variables, as s3.env holds them). */
export async function s3ClientFor(env) {
  const { S3Client } = await import('@aws-sdk/client-s3');
  return new S3Client({
    endpoint: env.AWS_ENDPOINT_URL_S3,
    region: env.AWS_REGION,
    forcePathStyle: true,
    credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY },
  });
}

/**
 * Runs `dr ARGV` to its end (`env` added to this process's) and returns its standard output;
 * throws with its standard error when it fails.
 */
export function drSync(argv, env = {}) {
  const r = spawnSync(process.execPath, [bin, ...argv], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
  });
  if (r.status !== 0) throw new Error(`dr ${argv.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

/** Writes `size` bytes of random data to `path`, 8 MiB at a time. */
export function writeRandomImage(path, size) {
  const fd = openSync(path, 'w');
  const chunk = 8 * 1024 * 1024;
  for (let o = 0; o < size; o += chunk)
    writeSync(fd, randomBytes(Math.min(chunk, size - o)), 0, Math.min(chunk, size - o), o);
  closeSync(fd);
}

/**
 * Overwrites `fraction` of the `block`-sized blocks of the `size`-byte image at `path` (distinct
 * blocks, at least one, chosen at random) with random data; returns how many it wrote.
 */
export function rewriteBlocks(path, size, fraction, block = 64 * 1024) {
  const blocks = size / block;
  const count = Math.max(1, Math.round(blocks * fraction));
  const chosen = new Set();
  while (chosen.size < count) chosen.add(randomInt(blocks));
  const fd = openSync(path, 'r+');
  for (const b of chosen) writeSync(fd, randomBytes(block), 0, block, b * block);
  closeSync(fd);
  return count;
}
