import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import { parseEvent } from '../../replicator/jobs/operation-events.js';
import type { RecoveryClient } from '../../replicator/jobs/recovery-client.js';
import type { OperationEvent, OperationResult } from '../../replicator/jobs/recovery-contract.js';
import { dr, freePort, type TestHome, testHome } from '../helpers/lifeboat-home.js';
import { type DrProcess, startDr, stopAll } from '../helpers/processes.js';
import {
  exists,
  killVolumeServers,
  recoveryClient,
  recoveryEnv,
  servedAppArgs,
  until,
  volumeServerPids,
} from '../helpers/recovery-rig.js';
import { redisUnavailable, startRedis, type TestRedis } from '../helpers/redis-server.js';
import { skipBecause } from '../helpers/skip.js';

const problem = redisUnavailable();

describe('recovery jobs when Redis restarts mid-operation', () => {
  let t: TestHome;
  let redis: TestRedis;
  let conn: Redis;
  let client: RecoveryClient;
  let env: NodeJS.ProcessEnv;

  async function setUp(persist: boolean) {
    t = await testHome();
    const dir = join(t.dir, 'redis');
    await mkdir(dir);
    redis = await startRedis(persist ? { persistDir: dir } : {});
    await t.startGateway();
    let prefix: string;
    ({ env, prefix } = recoveryEnv(t.home, redis.url));
    ({ conn, client } = recoveryClient(redis.url, prefix));
    conn.on('error', () => undefined); // refused while Redis restarts; commands wait for it
    client.queue.on('error', () => undefined); // the same refusals, reported by the queue
    const image = join(t.dir, 'web.img');
    const data = Buffer.alloc(256 * 1024);
    data.write(`lifeboat-marker-${randomBytes(6).toString('hex')}\n`);
    await writeFile(image, data);
    const port = await freePort();
    // The server listens only after 4 s: the drill sits in its health step while Redis restarts.
    const added = await dr(
      [
        '--home',
        t.home,
        ...servedAppArgs({
          name: 'web',
          image,
          port,
          dir: t.dir,
          delayMs: 4000,
          checkTimeout: '30s',
        }),
      ],
      { DR_LOG_LEVEL: 'silent' },
    );
    expect(added.err).toBe('');
    const agent = await dr(['--home', t.home, 'agent', '--app', 'web', '--once'], {
      DR_LOG_LEVEL: 'silent',
    });
    expect(agent.code).toBe(0);
  }

  beforeEach((ctx: TestContext) => {
    if (problem) skipBecause(ctx, problem);
  });

  afterEach(async () => {
    await stopAll();
    await client?.close();
    conn?.disconnect();
    await killVolumeServers(t?.dir);
    await redis?.stop();
    await t?.cleanup();
  });

  async function worker(): Promise<DrProcess> {
    const w = startDr(['worker', '--lock-duration', '10s'], { ...env, DR_LOG_LEVEL: 'info' });
    await w.waitFor(/worker ready/);
    return w;
  }

  async function events(opId: string): Promise<OperationEvent[]> {
    const all = await conn.xrange(client.keys.events, '-', '+');
    return all.map(([, f]) => parseEvent(f)).filter((e): e is OperationEvent => e?.opId === opId);
  }

  it('a drill goes on through a Redis crash and restart (append-only file), and runs once', async () => {
    await setUp(true);
    await worker();
    const e = await client.enqueue('drill', {
      app: 'web',
      requestedBy: 'test:redis',
      keepMs: 2000,
    });
    await until('the drill to launch', async () =>
      (await events(e.opId)).some((x) => x.step === 'launched') ? true : undefined,
    );
    await redis.restart(500);
    let end: OperationEvent | undefined;
    for await (const x of client.follow(e, AbortSignal.timeout(60_000))) {
      if (x.type === 'finished') end = x;
    }
    expect(end?.error).toBeUndefined();
    const result = end?.result as OperationResult;
    expect(result.health.ok).toBe(true);
    // one run: started once, materialised once, launched once, never resumed or retried
    expect(result.resumes).toBe(0);
    const all = await events(e.opId);
    const drill = all.filter((x) => x.job === 'drill');
    expect(drill.filter((x) => x.type === 'started')).toHaveLength(1);
    expect(drill.filter((x) => x.step === 'materialise' && x.progress === 0)).toHaveLength(1);
    expect(drill.filter((x) => x.step === 'launch' && x.progress === 0)).toHaveLength(1);
    expect(drill.some((x) => x.step === 'retrying')).toBe(false);
    // The finished event goes out as the job returns; BullMQ marks it completed just after.
    await until('the drill job to be completed', async () =>
      (await (await client.queue.getJob(e.opId))?.getState()) === 'completed' ? true : undefined,
    );
    // and its delayed cleanup, queued after the restart, still removes everything
    await until('the cleanup', async () =>
      !(await exists(join(t.home, 'recovery', e.opId))) &&
      (await volumeServerPids(t.dir)).length === 0
        ? true
        : undefined,
    );
  });

  it('a drill whose Redis comes back empty ends clearly for its follower and does not run again', async () => {
    await setUp(false);
    const w = await worker();
    const e = await client.enqueue('drill', {
      app: 'web',
      requestedBy: 'test:redis',
      keepMs: 2000,
    });
    await until('the drill to launch', async () =>
      (await events(e.opId)).some((x) => x.step === 'launched') ? true : undefined,
    );
    await redis.restart(500);
    let end: OperationEvent | undefined;
    for await (const x of client.follow(e, AbortSignal.timeout(60_000))) {
      if (x.type === 'finished') end = x;
    }
    // The job record went with Redis: the follower is told, the worker removes what the drill
    // made, and nothing is left to pick the job up and run it a second time.
    expect(end?.error?.code).toBe('operation_unknown');
    expect(await client.queue.getJob(e.opId)).toBeUndefined();
    await until('the worker to report the lost job', async () =>
      w.output().includes(`the job record of ${e.opId} is gone from Redis`) ? true : undefined,
    );
    // the worker removed the drill's server and images itself: nothing is left behind
    await until('the cleanup', async () =>
      !(await exists(join(t.home, 'recovery', e.opId))) &&
      (await volumeServerPids(t.dir)).length === 0
        ? true
        : undefined,
    );
    const started = (await events(e.opId)).filter((x) => x.job === 'drill' && x.type === 'started');
    expect(started).toHaveLength(0); // the old stream is gone, and no second run began
  });

  it('a failover whose Redis comes back empty keeps its server running and says where it is', async () => {
    await setUp(false);
    const w = await worker();
    const e = await client.enqueue('failover', { app: 'web', requestedBy: 'test:redis' });
    await until('the failover to launch', async () =>
      (await events(e.opId)).some((x) => x.step === 'launched') ? true : undefined,
    );
    await redis.restart(500);
    let end: OperationEvent | undefined;
    for await (const x of client.follow(e, AbortSignal.timeout(60_000))) {
      if (x.type === 'finished') end = x;
    }
    expect(end?.error?.code).toBe('operation_unknown');
    await until('the worker to report the lost job', async () =>
      w.output().includes(`its server local:${e.opId} keeps running, untracked`) ? true : undefined,
    );
    // production is not torn down because Redis forgot the job
    expect((await volumeServerPids(t.dir)).length).toBe(1);
    expect(await exists(join(t.home, 'recovery', e.opId))).toBe(true);
    expect(await client.queue.getJob(e.opId)).toBeUndefined();
  });
});
