import { randomBytes } from 'node:crypto';
import { open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import type { RecoveryClient } from '../../replicator/jobs/recovery-client.js';
import type { OperationResult } from '../../replicator/jobs/recovery-contract.js';
import { fuseUnavailable, unmountStale } from '../../replicator/recovery/fuse-mount.js';
import { dr, freePort, type TestHome, testHome, updateConfig } from '../helpers/lifeboat-home.js';
import { type DrProcess, startDr, stopAll } from '../helpers/processes.js';
import {
  killVolumeServers,
  operationEvents,
  recoveryClient,
  recoveryEnv,
  servedAppArgs,
} from '../helpers/recovery-rig.js';
import { redisUnavailable, startRedis, type TestRedis } from '../helpers/redis-server.js';
import { skipBecause } from '../helpers/skip.js';

const problem = redisUnavailable() ?? (await fuseUnavailable());

describe('instant recovery through the workers (local provider, FUSE)', () => {
  let t: TestHome;
  let redis: TestRedis;
  let conn: Redis;
  let client: RecoveryClient;
  let env: NodeJS.ProcessEnv;
  let data: Buffer;

  beforeEach(async (ctx: TestContext) => {
    if (problem) skipBecause(ctx, problem);
    redis = await startRedis();
    t = await testHome();
    await t.startGateway();
    let prefix: string;
    ({ env, prefix } = recoveryEnv(t.home, redis.url));
    ({ conn, client } = recoveryClient(redis.url, prefix));
  });

  afterEach(async () => {
    await stopAll();
    // The kernel drops a killed worker's mount a moment after it exits: detach it before removing.
    if (t) await unmountStale(t.dir);
    await client?.close();
    conn?.disconnect();
    await killVolumeServers(t?.dir);
    await redis?.stop();
    await t?.cleanup();
  });

  async function protect(delayMs = 0): Promise<string> {
    const marker = `lifeboat-marker-${randomBytes(6).toString('hex')}`;
    const image = join(t.dir, 'web.img');
    data = Buffer.alloc(4 * 1024 * 1024);
    data.write(`${marker}\n`);
    randomBytes(1024 * 1024).copy(data, 2 * 1024 * 1024);
    await writeFile(image, data);
    const args = [
      '--home',
      t.home,
      ...servedAppArgs({ name: 'web', image, port: await freePort(), dir: t.dir, delayMs }),
    ];
    expect((await dr(args, { DR_LOG_LEVEL: 'silent' })).err).toBe('');
    const agent = await dr(['--home', t.home, 'agent', '--app', 'web', '--once'], {
      DR_LOG_LEVEL: 'silent',
    });
    expect(agent.code).toBe(0);
    return marker;
  }

  async function worker(): Promise<DrProcess> {
    const w = startDr(['worker', '--concurrency', '2', '--lock-duration', '2s'], env);
    await w.waitFor(/worker ready/);
    return w;
  }

  it('a drill is served on demand by default and is healthy from the vault', async () => {
    const marker = await protect();
    await worker();
    const r = await dr(['drill', 'web', '--keep', '1s', '--wait', '--json'], env);
    expect(r.code).toBe(0);
    const result = JSON.parse(r.out) as OperationResult;
    expect(result.health.output).toContain(marker);
    expect(result.recovery?.kind).toBe('instant');
    expect(result.server.details['volume.data']).toMatch(/\/instant\/data\.img$/);
  });

  it('a failover with recovery.instant waits for hydration and says when the gateway stopped mattering', async () => {
    const marker = await protect();
    await updateConfig(t.home, (doc) => doc.setIn(['recovery', 'instant'], true));
    await worker();
    const r = await dr(['failover', 'web', '--wait', '--json'], env);
    expect(r.code).toBe(0);
    const result = JSON.parse(r.out) as OperationResult;
    expect(result.health.output).toContain(marker);
    expect(result.recovery).toMatchObject({ kind: 'instant', hydrated: 1 });
    const h = result.recovery?.hydration;
    expect(h?.bytes).toBe(data.length);
    expect(Date.parse(h?.independentAt ?? '')).toBeGreaterThan(0);
    // the hydrated local copy is the volume at the point
    const local = await readFile(join(t.home, 'recovery', result.opId, 'data.local'));
    expect(local.equals(data)).toBe(true);
  });

  it('recovery.instant: false materialises in full', async () => {
    await protect();
    await updateConfig(t.home, (doc) => doc.setIn(['recovery', 'instant'], false));
    await worker();
    const r = await dr(['drill', 'web', '--keep', '1s', '--wait', '--json'], env);
    expect(r.code).toBe(0);
    const result = JSON.parse(r.out) as OperationResult;
    expect(result.recovery).toEqual({ kind: 'full' });
  });

  it('a worker killed mid-failover: another resumes it and keeps of its local copy only what verifies', async () => {
    const marker = await protect(3000);
    await updateConfig(t.home, (doc) => doc.setIn(['recovery', 'instant'], true));
    const { reached, finished } = operationEvents(conn, client);
    const a = await worker();
    const r = await dr(['failover', 'web', '--json'], env);
    const opId = (JSON.parse(r.out) as { opId: string }).opId;
    await reached(opId, 'launched');
    await a.kill9();
    // What the killed worker left, half written: garbage over the marker and the random data.
    const local = join(t.home, 'recovery', opId, 'data.local');
    const fh = await open(local, 'r+');
    await fh.write(Buffer.alloc(8192, 0x5a), 0, 8192, 0);
    await fh.write(Buffer.alloc(65536, 0xa5), 0, 65536, 2 * 1024 * 1024 + 65536);
    await fh.close();
    await worker();
    const end = await finished(opId, 'failover');
    expect(end.error).toBeUndefined();
    const result = end.result as OperationResult;
    expect(result.resumes).toBeGreaterThanOrEqual(1);
    // the server read the point's marker, not the garbage, and the copy is the volume at the point
    expect(result.health.output).toContain(marker);
    expect(result.recovery).toMatchObject({ kind: 'instant', hydrated: 1 });
    expect((await readFile(local)).equals(data)).toBe(true);
  });
});
