/** Drills and failovers refuse a point whose signed record does not verify (issue 15, probe 3 through the workers). */
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import type { Gateway } from '../../../replicator/gateway/gateway-server.js';
import type { PointInfo } from '../../../replicator/transport/wire-types.js';
import { dr, freePort, type TestHome, testHome } from '../../helpers/lifeboat-home.js';
import { startDr, stopAll } from '../../helpers/processes.js';
import {
  killVolumeServers,
  recoveryEnv,
  servedAppArgs,
  volumeServerPids,
} from '../../helpers/recovery-rig.js';
import { redisUnavailable, startRedis, type TestRedis } from '../../helpers/redis-server.js';
import { skipBecause } from '../../helpers/skip.js';

const problem = redisUnavailable();

describe('recovery jobs refuse points that do not verify', () => {
  let t: TestHome;
  let g: Gateway;
  let redis: TestRedis;
  let env: NodeJS.ProcessEnv;

  beforeEach(async (ctx: TestContext) => {
    if (problem) skipBecause(ctx, problem);
    redis = await startRedis();
    t = await testHome();
    g = await t.startGateway();
    ({ env } = recoveryEnv(t.home, redis.url));
    const image = join(t.dir, 'web.img');
    const data = Buffer.alloc(256 * 1024);
    randomBytes(64 * 1024).copy(data, 64 * 1024);
    await writeFile(image, data);
    const args = servedAppArgs({ name: 'web', image, port: await freePort(), dir: t.dir });
    expect((await dr(['--home', t.home, ...args], { DR_LOG_LEVEL: 'silent' })).err).toBe('');
    const agent = await dr(['--home', t.home, 'agent', '--app', 'web', '--once'], {
      DR_LOG_LEVEL: 'silent',
    });
    expect(agent.code).toBe(0);
    // Someone with write access to the gateway's store gives the point another digest.
    await g.close();
    const path = join(t.home, 'store', 'apps', 'web', 'catalog.json');
    const catalog = JSON.parse(await readFile(path, 'utf8')) as { points: PointInfo[] };
    const p = catalog.points[0] as PointInfo;
    (p.volumes.data as { digest: string }).digest = 'ab'.repeat(32);
    await writeFile(path, JSON.stringify(catalog));
    g = await t.startGateway();
    const w = startDr(['worker', '--concurrency', '1', '--lock-duration', '2s'], env);
    await w.waitFor(/worker ready/);
  });

  afterEach(async () => {
    await stopAll();
    await killVolumeServers(t?.dir);
    await redis?.stop();
    await t?.cleanup();
  });

  it.each(['drill', 'failover'])('a %s fails naming the point and what is wrong', async (verb) => {
    const r = await dr([verb, 'web', '--wait', '--json'], env);
    expect(r.code).toBe(1);
    const body = JSON.parse(r.out) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('point_unverified');
    expect(body.error.message).toMatch(/point 1 of web is refused: .*digest of data/);
    expect(await volumeServerPids(t.dir)).toEqual([]);
  });
});
