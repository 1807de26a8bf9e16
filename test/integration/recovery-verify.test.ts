import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import { connectRedis } from '../../core/redis.js';
import type { RecoveryClient } from '../../replicator/jobs/recovery-client.js';
import {
  type OperationEvent,
  RECOVERY_QUEUE,
  type VerifyResult,
} from '../../replicator/jobs/recovery-contract.js';
import { dr, type TestHome, testHome, writeImage } from '../helpers/lifeboat-home.js';
import { startDr, stopAll } from '../helpers/processes.js';
import { recoveryClient, recoveryEnv } from '../helpers/recovery-rig.js';
import { redisUnavailable, startRedis, type TestRedis } from '../helpers/redis-server.js';
import { skipBecause } from '../helpers/skip.js';

const problem = redisUnavailable();
const quiet = { DR_LOG_LEVEL: 'silent' };

describe('verify jobs', () => {
  let t: TestHome;
  let redis: TestRedis;
  let conn: Redis;
  let client: RecoveryClient;
  let env: NodeJS.ProcessEnv;
  let events: QueueEvents;
  let eventsConn: Redis;

  beforeEach(async (ctx: TestContext) => {
    if (problem) skipBecause(ctx, problem);
    redis = await startRedis();
    t = await testHome();
    let prefix: string;
    ({ env, prefix } = recoveryEnv(t.home, redis.url));
    ({ conn, client } = recoveryClient(redis.url, prefix));
    eventsConn = connectRedis(redis.url, 'test-events');
    events = new QueueEvents(RECOVERY_QUEUE, {
      connection: eventsConn,
      prefix: client.keys.bullPrefix,
    });
    const image = join(t.dir, 'a.img');
    await writeImage(image, 1024 * 1024, 7);
    const args = ['--home', t.home, 'app', 'add', 'web', '--volume', `a=${image}`];
    expect((await dr([...args, '--quiesce-freeze', 'true', '--quiesce-thaw', 'true'])).code).toBe(
      0,
    );
    const g = await t.startGateway();
    expect((await dr(['--home', t.home, 'agent', '--app', 'web', '--once'], quiet)).code).toBe(0);
    await g.close();
  });

  afterEach(async () => {
    await stopAll();
    await events?.close();
    eventsConn?.disconnect();
    await client?.close();
    conn?.disconnect();
    await redis?.stop();
    await t?.cleanup();
  });

  async function runVerify(app = 'web', point?: number): Promise<OperationEvent[]> {
    const w = startDr(['worker'], env);
    await w.waitFor(/worker ready/);
    const e = await client.enqueue('verify', {
      app,
      requestedBy: 'test:verify',
      ...(point !== undefined ? { point } : {}),
    });
    const seen: OperationEvent[] = [];
    for await (const ev of client.follow(e, AbortSignal.timeout(60_000))) seen.push(ev);
    return seen;
  }

  it('authenticates and decrypts every block of the latest point; the result is in the job and its event', async () => {
    await t.startGateway();
    const seen = await runVerify();
    const end = seen.at(-1);
    expect(end?.type).toBe('finished');
    const result = end?.result as VerifyResult;
    expect(result).toMatchObject({
      mode: 'verify',
      app: 'web',
      point: 1,
      ok: true,
      problemCount: 0,
    });
    expect(result.volumes).toEqual([{ volume: 'a', blocks: 16, digestOk: true }]);
    expect(seen.some((e) => e.step === 'verified')).toBe(true);
    // the same result is the BullMQ job's return value (the event comes just before it)
    const job = await client.queue.getJob(result.opId);
    expect(await job?.waitUntilFinished(events, 30_000)).toEqual(result);
  });

  it('reports a damaged block as ok: false with the block named', async () => {
    const config = await t.config();
    const segDir = join(config.storeDir, 'apps', 'web', 'segments');
    const seg = join(segDir, (await readdir(segDir)).sort()[0] as string);
    const bytes = await readFile(seg);
    // The agent's pre-copy and final rounds both wrote records: flip a byte in each tenth of
    // the segment, so some record the point uses is hit.
    for (let k = 1; k < 10; k++) {
      const at = Math.floor((bytes.length * k) / 10);
      bytes[at] = (bytes[at] as number) ^ 0x55;
    }
    await writeFile(seg, bytes);
    await t.startGateway();
    const end = (await runVerify()).at(-1);
    expect(end?.error).toBeUndefined();
    const result = end?.result as VerifyResult;
    expect(result.ok).toBe(false);
    expect(result.problemCount).toBeGreaterThan(0);
    expect(result.problems[0]).toMatchObject({ volume: 'a', block: expect.any(Number) });
    expect(result.problems[0]?.reason).toMatch(/authenticate|MAC|malformed/);
  });

  it('fails for an unknown point or app, with the reason', async () => {
    await t.startGateway();
    const end = (await runVerify('web', 99)).at(-1);
    expect(end?.result).toBeUndefined();
    expect(end?.error?.code).toBe('point_unknown');
    const none = (await runVerify('nosuch')).at(-1);
    expect(none?.error?.code).toBe('app_unknown');
    expect(none?.error?.message).toContain('nosuch');
  });
});
