import { randomBytes } from 'node:crypto';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { connectRedis } from '../../core/redis.js';
import { RecoveryClient } from '../../replicator/jobs/recovery-client.js';
import { dr, freePort } from './lifeboat-home.js';

/** The small health-checked service the recovery tests recover (test/fixtures/volume-server.mjs). */
export const volumeServerScript = fileURLToPath(
  new URL('../fixtures/volume-server.mjs', import.meta.url),
);

export { until } from './wait-for.js';

export const exists = (p: string): Promise<boolean> =>
  stat(p).then(
    () => true,
    () => false, // gone
  );

/** Pids of volume servers a test started (their command line carries the test's dir). */
export async function volumeServerPids(dir: string | undefined): Promise<number[]> {
  if (!dir) return [];
  const out: number[] = [];
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const cmd = await readFile(`/proc/${e}/cmdline`, 'utf8').catch(() => ''); // exited meanwhile
    if (cmd.includes('volume-server.mjs') && cmd.includes(dir)) out.push(Number(e));
  }
  return out;
}

/** Kills the volume servers a test started (see volumeServerPids). */
export async function killVolumeServers(dir: string | undefined): Promise<void> {
  for (const pid of await volumeServerPids(dir)) process.kill(pid, 'SIGKILL');
}

/** The environment of `dr` processes on a home and a Redis, under a fresh key prefix. */
export function recoveryEnv(
  home: string,
  redisUrl: string,
  prefixLetter = 't',
): { env: NodeJS.ProcessEnv; prefix: string } {
  const prefix = `${prefixLetter}${randomBytes(3).toString('hex')}:`;
  return {
    prefix,
    env: { DR_HOME: home, REDIS_URL: redisUrl, DR_REDIS_PREFIX: prefix, DR_LOG_LEVEL: 'silent' },
  };
}

/** A connection and a RecoveryClient on the same Redis and prefix as `dr worker`. */
export function recoveryClient(
  redisUrl: string,
  prefix: string,
): { conn: Redis; client: RecoveryClient } {
  const conn = connectRedis(redisUrl, 'test');
  return { conn, client: new RecoveryClient(conn, prefix) };
}

/**
 * Arguments of `dr app add` for an app with one volume, recovered by the local provider as a
 * volume server on `port` (listening after `delayMs`) that the health check asks. Points are
 * app-consistent (freeze/thaw hooks) unless `fuzzy`.
 */
export function servedAppArgs(o: {
  name: string;
  image: string;
  port: number;
  dir: string;
  delayMs?: number;
  check?: string;
  checkTimeout?: string;
  fuzzy?: boolean;
  extra?: string[];
}): string[] {
  const args = ['app', 'add', o.name, '--volume', `data=${o.image}`, ...(o.extra ?? [])];
  if (!o.fuzzy) args.push('--quiesce-freeze', 'true', '--quiesce-thaw', 'true');
  args.push(
    '--start',
    `exec node ${volumeServerScript} ${o.port} ${o.delayMs ?? 0} ${o.dir}`,
    '--check',
    o.check ?? `http://127.0.0.1:${o.port}/health`,
    '--check-timeout',
    o.checkTimeout ?? '20s',
  );
  return args;
}

/**
 * Adds `name` to the home as a served app (servedAppArgs, on a free port) over a 256 KiB image
 * with a marker and random data, and commits its first point with `dr agent --once`. `more` are
 * further `dr app add` words after the served ones. Returns the port its server listens on.
 */
export async function protectServedApp(
  t: { dir: string; home: string },
  name: string,
  o: { extra?: string[]; check?: string; checkTimeout?: string; more?: string[] } = {},
): Promise<number> {
  const image = join(t.dir, `${name}.img`);
  const data = Buffer.alloc(256 * 1024);
  data.write(`lifeboat-marker-${name}\n`);
  randomBytes(64 * 1024).copy(data, 128 * 1024);
  await writeFile(image, data);
  const port = await freePort();
  const served = servedAppArgs({
    name,
    image,
    port,
    dir: t.dir,
    ...(o.check ? { check: o.check } : {}),
    ...(o.checkTimeout ? { checkTimeout: o.checkTimeout } : {}),
    ...(o.extra ? { extra: o.extra } : {}),
  });
  const added = await dr(['--home', t.home, ...served, ...(o.more ?? [])], {
    DR_LOG_LEVEL: 'silent',
  });
  if (added.err !== '') throw new Error(`dr app add ${name}: ${added.err}`);
  const once = await dr(['--home', t.home, 'agent', '--app', name, '--once'], {
    DR_LOG_LEVEL: 'silent',
  });
  if (once.code !== 0) throw new Error(`dr agent --app ${name} --once: ${once.err}`);
  return port;
}
