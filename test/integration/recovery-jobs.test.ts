import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import type { RecoveryClient } from '../../replicator/jobs/recovery-client.js';
import type { OperationResult } from '../../replicator/jobs/recovery-contract.js';
import { dr, freePort, type TestHome, testHome, updateConfig } from '../helpers/lifeboat-home.js';
import { openPaths } from '../helpers/open-files.js';
import { type DrProcess, startDr, stopAll } from '../helpers/processes.js';
import {
  exists,
  killVolumeServers,
  operationEvents,
  recoveryClient,
  recoveryEnv,
  servedAppArgs,
  until,
  volumeServerPids,
} from '../helpers/recovery-rig.js';
import { redisUnavailable, startRedis, type TestRedis } from '../helpers/redis-server.js';
import { skipBecause } from '../helpers/skip.js';

const problem = redisUnavailable();

describe('recovery jobs: drill and failover with the local provider', () => {
  let t: TestHome;
  let redis: TestRedis;
  let conn: Redis;
  let client: RecoveryClient;
  let env: NodeJS.ProcessEnv;

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
    await client?.close();
    conn?.disconnect();
    await killVolumeServers(t?.dir);
    await redis?.stop();
    await t?.cleanup();
  });

  /**
   * Protects app `name` with one volume that starts with a marker line, a freeze hook (so its
   * points are app-consistent) unless `fuzzy`, and a volume server as its recovered app.
   */
  async function protect(
    o: {
      name?: string;
      delayMs?: number;
      check?: string;
      checkTimeout?: string;
      fuzzy?: boolean;
      extra?: string[];
    } = {},
  ): Promise<{ marker: string }> {
    const name = o.name ?? 'web';
    const marker = `lifeboat-marker-${randomBytes(6).toString('hex')}`;
    const image = join(t.dir, `${name}.img`);
    const data = Buffer.alloc(256 * 1024);
    data.write(`${marker}\n`);
    randomBytes(64 * 1024).copy(data, 128 * 1024);
    await writeFile(image, data);
    const port = await freePort();
    const args = ['--home', t.home, ...servedAppArgs({ ...o, name, image, port, dir: t.dir })];
    const added = await dr(args, { DR_LOG_LEVEL: 'silent' });
    expect(added.err).toBe('');
    const agent = await dr(['--home', t.home, 'agent', '--app', name, '--once'], {
      DR_LOG_LEVEL: 'silent',
    });
    expect(agent.code).toBe(0);
    return { marker };
  }

  async function worker(): Promise<DrProcess> {
    const w = startDr(['worker', '--concurrency', '2', '--lock-duration', '2s'], env);
    await w.waitFor(/worker ready/);
    return w;
  }

  async function enqueue(args: string[]): Promise<string> {
    const r = await dr([...args, '--json'], env);
    expect(r.err).toBe('');
    return (JSON.parse(r.out) as { opId: string }).opId;
  }

  const events = (opId: string) => operationEvents(conn, client).events(opId);
  const reached = (opId: string, step: string) => operationEvents(conn, client).reached(opId, step);
  const finished = (opId: string, job = 'drill') =>
    operationEvents(conn, client).finished(opId, job);

  /** The operation left nothing: no recovery directory, no server process. */
  async function nothingLeft(opId: string) {
    await until(`${opId} to be cleaned up`, async () =>
      !(await exists(join(t.home, 'recovery', opId))) &&
      (await volumeServerPids(t.dir)).length === 0
        ? true
        : undefined,
    );
  }

  it('drills an app: healthy server on the restored volume, RTO split, delayed cleanup', async () => {
    const { marker } = await protect();
    await worker();
    const r = await dr(['drill', 'web', '--keep', '2s', '--wait', '--json'], env);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const result = JSON.parse(r.out) as OperationResult & { ok: boolean };
    const points = await (await t.client()).points('web');
    expect(result.ok).toBe(true);
    expect(result.point).toBe(points.at(-1)?.id);
    expect(points.at(-1)?.label).toBe('app-consistent');
    expect(result.dataAgeSeconds).toBeGreaterThanOrEqual(0);
    expect(result.health.output).toContain(marker);
    expect(result.server.provider).toBe('local');
    for (const k of ['materialiseMs', 'launchMs', 'healthyMs', 'totalMs'] as const) {
      expect(result.rto[k]).toBeGreaterThanOrEqual(0);
    }
    expect(result.rto.totalMs).toBeGreaterThanOrEqual(result.rto.materialiseMs);
    expect(result.cleanupAt).toBeDefined();
    const steps = (await events(result.opId)).map((e) => e.step ?? e.type);
    expect(steps).toEqual(
      expect.arrayContaining(['started', 'materialised', 'launched', 'healthy']),
    );

    const cleanup = await finished(result.opId, 'cleanup');
    expect(cleanup.error).toBeUndefined();
    await nothingLeft(result.opId);
  });

  it('keeps no plaintext image cache when dr.yaml turns it off', async () => {
    await protect();
    await updateConfig(t.home, (doc) => doc.setIn(['recovery', 'imageCache'], false));
    await worker();
    const r = await dr(['drill', 'web', '--keep', '1s', '--wait', '--json'], env);
    expect(r.code).toBe(0);
    const { opId } = JSON.parse(r.out) as OperationResult;
    await nothingLeft(opId);
    expect(await exists(join(t.home, 'cache', 'images', 'web'))).toBe(false);
    const warm = await dr(['warm', '--once'], env);
    expect(warm.code).not.toBe(0);
    expect(warm.err).toMatch(/image cache is off.*recovery\.imageCache: true/s);
  });

  it('prints the result with the RTO split, and `dr cleanup` removes a kept drill at once', async () => {
    await protect();
    await worker();
    const r = await dr(['drill', 'web', '--wait'], env);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/drill of web is healthy/);
    expect(r.out).toMatch(/RTO \S+: materialise \S+, launch \S+, healthy \S+/);
    const opId = /^(op-[a-z0-9]+):/.exec(r.out)?.[1] ?? '';
    expect(await exists(join(t.home, 'recovery', opId))).toBe(true);
    const c = await dr(['cleanup', opId, '--wait'], env);
    expect(c.code).toBe(0);
    expect(c.out).toContain(`${opId}: cleaned up`);
    await nothingLeft(opId);
  });

  it('fails a drill of an unknown app with the reason', async () => {
    await worker();
    const r = await dr(['drill', 'nosuch', '--wait'], env);
    expect(r.code).toBe(1);
    expect(r.err).toContain('no app named "nosuch"');
  });

  it('fails a drill when the app has no consistent point yet', async () => {
    await protect({ name: 'raw', fuzzy: true });
    await worker();
    const r = await dr(['drill', 'raw', '--wait'], env);
    expect(r.code).toBe(1);
    expect(r.err).toContain('raw has no consistent recovery point yet');
  });

  it('refuses a second drill of an app while one runs, with the reason', async () => {
    await protect({ delayMs: 2000 });
    await worker();
    const first = await enqueue(['drill', 'web']);
    await reached(first, 'launched');
    const second = await dr(['drill', 'web'], env);
    expect(second.code).toBe(2);
    expect(second.err).toContain(`web is busy: drill ${first}`);
    expect(second.err).toContain(`dr cancel ${first}`);
    expect((await finished(first)).result).toBeDefined();
    // once the first is done, the app is free again
    const third = await dr(['drill', 'web', '--json'], env);
    expect(third.code).toBe(0);
  });

  it('fails a drill whose health check fails, and still cleans up', async () => {
    await protect({ check: 'echo broken-check >&2; exit 3', checkTimeout: '1s' });
    await worker();
    const r = await dr(['drill', 'web', '--wait', '--json'], env);
    expect(r.code).toBe(1);
    const body = JSON.parse(r.out) as { opId: string; error: { code: string; message: string } };
    expect(body.error.code).toBe('health_failed');
    expect(body.error.message).toContain('broken-check');
    await nothingLeft(body.opId);
  });

  it('cancels a running drill, which cleans up after itself', async () => {
    await protect({ delayMs: 120_000, checkTimeout: '120s' });
    await worker();
    const opId = await enqueue(['drill', 'web']);
    await reached(opId, 'launched');
    expect((await volumeServerPids(t.dir)).length).toBe(1);
    const c = await dr(['cancel', opId], env);
    expect(c.out).toContain('cancel requested');
    const end = await finished(opId);
    expect(end.error?.code).toBe('operation_cancelled');
    await nothingLeft(opId);
  });

  it('resumes a drill on another worker after its worker is killed, leaving nothing behind', async () => {
    const { marker } = await protect({ delayMs: 3000 });
    const a = await worker();
    const opId = await enqueue(['drill', 'web', '--keep', '1s']);
    await reached(opId, 'launched');
    await a.kill9();
    await worker();
    const end = await finished(opId);
    expect(end.error).toBeUndefined();
    const result = end.result as OperationResult;
    expect(result.resumes).toBeGreaterThanOrEqual(1);
    expect(result.health.output).toContain(marker);
    // Full images are made once: the resumed job does not materialise again. Volumes served on
    // demand lived in the killed worker: the new one serves them again, reusing what verifies.
    const materialiseStarts = (await events(opId)).filter(
      (e) => e.step === 'materialise' && e.progress === 0,
    );
    expect(materialiseStarts).toHaveLength(result.recovery?.kind === 'instant' ? 2 : 1);
    await finished(opId, 'cleanup');
    await nothingLeft(opId);
  });

  it('runs a failover: stops replication, fences the source, keeps its server (no automatic cleanup)', async () => {
    const fenceLog = join(t.dir, 'fenced.txt');
    const { marker } = await protect({
      extra: ['--fence', `echo "$DR_APP $DR_OP_ID $DR_VOLUME_DATA" >> ${fenceLog}`],
    });
    await worker();
    // A running agent stops replicating at the failover, says why once, and stands by.
    const agent = startDr(['agent', '--app', 'web', '--tracker', 'scan', '--interval', '300ms'], {
      ...env,
      DR_LOG_LEVEL: 'info',
    });
    await agent.waitFor(/recovery point committed|no change since the last point/);
    const r = await dr(['failover', 'web', '--wait', '--json'], env);
    expect(r.code).toBe(0);
    const result = JSON.parse(r.out) as OperationResult;
    expect(result.mode).toBe('failover');
    expect(result.health.output).toContain(marker);
    expect(result.cleanupAt).toBeUndefined();
    expect(result.fence).toMatchObject({ fenced: true });
    // the fence ran once, with the app, the operation and the original volume in its environment
    expect(await readFile(fenceLog, 'utf8')).toBe(`web ${result.opId} ${join(t.dir, 'web.img')}\n`);
    expect(await client.queue.getJob(`${result.opId}-cleanup`)).toBeUndefined();
    expect((await volumeServerPids(t.dir)).length).toBe(1);
    await agent.waitFor(/standing by until `dr failback web` protects it again/, 60_000);
    expect(agent.output()).toContain(`app web was failed over (operation ${result.opId}`);
    // it holds the original volume no longer (failback may write it), and logs no refusal loop
    await until('the agent to release the volume', async () =>
      (await openPaths(agent.child.pid)).includes(join(t.dir, 'web.img')) ? undefined : true,
    );
    expect(agent.child.exitCode).toBe(null);
    expect(agent.output().match(/standing by/g)).toHaveLength(1);
    const status = JSON.parse((await dr(['status', 'web', '--json'], env)).out);
    expect(status.phase).toBe('paused');
    expect(status.reason).toContain(`failed over by ${result.opId}`);
    // A one-shot agent is refused at once, with the remedy.
    const again = await dr(['agent', '--app', 'web', '--once'], { ...env, DR_LOG_LEVEL: 'silent' });
    expect(again.code).toBe(2);
    expect(again.err).toContain('dr failback web');
    expect(await agent.stop()).toBe(0);
  });

  it('a failover without a fence command, or with one that fails, says the source was not fenced', async () => {
    await protect({
      extra: ['--fence', 'echo "ssh: connect to host source: No route" >&2; exit 3'],
    });
    await worker();
    const r = await dr(['failover', 'web', '--wait', '--json'], env);
    expect(r.code).toBe(0);
    const result = JSON.parse(r.out) as OperationResult;
    expect(result.fence?.fenced).toBe(false);
    expect(result.fence?.detail).toContain(
      'the source of web was NOT fenced: the fence command exited 3: ssh: connect to host source: No route',
    );
    expect(result.fence?.detail).toContain('stop it and unmount its volumes by hand now');
    // and the failover went on: the app is served at the DR site
    expect((await volumeServerPids(t.dir)).length).toBe(1);
    const ev = await events(result.opId);
    expect(ev.some((e) => e.step === 'not-fenced')).toBe(true);
  });

  it('says how to get Redis when REDIS_URL is unset', async () => {
    const r = await dr(['drill', 'web'], { ...env, REDIS_URL: '' });
    expect(r.code).toBe(2);
    expect(r.err).toContain('set REDIS_URL=redis://127.0.0.1:6379, or start everything with dr up');
  });
});
