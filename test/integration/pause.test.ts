import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import { errorMessage } from '../../core/errors.js';
import type { AuditEntry } from '../../engine/audit-log.js';
import type { Notice } from '../../engine/contract.js';
import type { Engine } from '../../engine/create-engine.js';
import type {
  AppStatus,
  PointInfo,
  ProtectionState,
} from '../../replicator/transport/wire-types.js';
import {
  command,
  type EngineHome,
  engineHome,
  startEngine,
  testPrefix,
} from '../helpers/engine-home.js';
import {
  dr,
  scribble,
  type TestHome,
  testHome,
  updateConfig,
  writeImage,
} from '../helpers/lifeboat-home.js';
import { startDr, stopAll } from '../helpers/processes.js';
import { redisUnavailable, startRedis, type TestRedis } from '../helpers/redis-server.js';
import { restoreLatest } from '../helpers/restore.js';
import { skipBecause } from '../helpers/skip.js';
import { waitFor } from '../helpers/wait-for.js';

const quiet = { DR_LOG_LEVEL: 'silent' };

async function points(t: TestHome): Promise<PointInfo[]> {
  const r = await dr(['--home', t.home, 'points', 'web', '--json'], quiet);
  return JSON.parse(r.out) as PointInfo[];
}

describe('pause and resume of replication', () => {
  let t: TestHome;
  let redis: TestRedis | undefined;
  let image: string;
  beforeEach(async () => {
    t = await testHome();
    image = join(t.dir, 'a.img');
    await writeImage(image, 2 * 1024 * 1024, 11);
    await dr(['--home', t.home, 'app', 'add', 'web', '--volume', `a=${image}`]);
    await updateConfig(t.home, (doc) => {
      doc.setIn(['channels', 'apps', 'web'], ['slack:CWEB']);
    });
  });
  afterEach(async () => {
    await stopAll();
    await redis?.stop();
    redis = undefined;
    await t.cleanup();
  });

  it('pause: the agent waits while writes go on, no new points; resume: it resyncs and the next point restores byte-exact', async (ctx: TestContext) => {
    const why = redisUnavailable();
    if (why) skipBecause(ctx, why);
    redis = await startRedis();
    const env = { DR_HOME: t.home, REDIS_URL: redis.url, ...quiet };
    const gateway = startDr(['gateway'], { DR_HOME: t.home });
    await gateway.waitFor(/gateway listening/);
    const agent = startDr(['agent', '--app', 'web', '--tracker', 'scan', '--interval', '300ms'], {
      DR_HOME: t.home,
    });
    await agent.waitFor(/recovery point committed|no change since the last point/);

    const paused = await dr(['--home', t.home, 'pause', 'web', '--json'], env);
    expect(paused.code).toBe(0);
    const body = JSON.parse(paused.out) as { ok: boolean; summary: string };
    expect(body.ok).toBe(true);
    expect(body.summary).toMatch(/paused replication of web/);
    await agent.waitFor(/replication paused; waiting for the resume/);
    const before = (await points(t)).length;

    // Writes go on at the source while paused; the agent does not exit.
    await scribble(image, 40);
    const status = JSON.parse(
      (await dr(['--home', t.home, 'status', 'web', '--json'], quiet)).out,
    ) as AppStatus;
    expect(status.phase).toBe('paused');
    expect(status.reason).toMatch(/^paused by .+ since .+; resume with `dr resume web`/);
    await waitFor('the agent reported waiting', async () => {
      const s = JSON.parse((await dr(['--home', t.home, 'status', 'web', '--json'], quiet)).out);
      if ((s as AppStatus).reason?.includes('its agent is waiting')) return true;
      await sleep(200);
      return undefined;
    });
    // Several agent intervals (300 ms each) pass: still no new point, still running.
    await sleep(1500);
    expect((await points(t)).length).toBe(before);
    expect(agent.child.exitCode).toBeNull();

    const twice = await dr(['--home', t.home, 'pause', 'web'], env);
    expect(twice.code).toBe(0);
    expect(twice.out).toMatch(/web is already paused \(by .+ since .+\)/);

    const resumed = await dr(['--home', t.home, 'resume', 'web'], env);
    expect(resumed.code).toBe(0);
    expect(resumed.out).toMatch(/resumed replication of web/);
    await agent.waitFor(/replication resumed; resyncing/);
    await waitFor(
      'a point after the resume',
      async () => {
        if ((await points(t)).length > before) return true;
        await sleep(200);
        return undefined;
      },
      30_000,
    );
    expect(await agent.stop()).toBe(0);

    const out = join(t.dir, 'restored.img');
    const r = await restoreLatest(t, 'a', out);
    expect(r.code, r.err).toBe(0);
    expect((await readFile(out)).equals(await readFile(image))).toBe(true);

    // Both were told to the channels and written to the audit log.
    const conn = new Redis(redis.url);
    try {
      const notices = (await conn.xrange('lifeboat:notices', '-', '+')).map(
        ([, f]) => JSON.parse(f[f.indexOf('notice') + 1] ?? '{}') as Notice,
      );
      // A pause and its resume are one message in chat: they share a key.
      expect(notices[0]?.key).toMatch(/^pause:web:\d{4}-/);
      expect(notices[1]?.key).toBe(notices[0]?.key);
      expect(notices.map((n) => [n.kind, n.app, n.targets])).toEqual([
        ['replication.paused', 'web', ['slack:CWEB']],
        ['replication.resumed', 'web', ['slack:CWEB']],
      ]);
      const audit = (await conn.xrange('lifeboat:audit', '-', '+')).map(
        ([, f]) => JSON.parse(f[f.indexOf('entry') + 1] ?? '{}') as AuditEntry,
      );
      expect(
        audit
          .filter((a) => a.type === 'result')
          .map((a) => (a.data as { verb: string; state: string }).state),
      ).toEqual(['paused', 'protected']);
    } finally {
      conn.disconnect();
    }

    const again = await dr(['--home', t.home, 'resume', 'web', '--json'], env);
    expect(again.code).toBe(2);
    expect(JSON.parse(again.out).summary).toBe('web is not paused; nothing to resume');
    await gateway.stop();
  });

  it('dr agent --once on a paused app exits 3; an agent started paused waits; a failed-over app can be neither paused nor resumed', async (ctx: TestContext) => {
    const why = redisUnavailable();
    if (why) skipBecause(ctx, why);
    redis = await startRedis();
    const env = { DR_HOME: t.home, REDIS_URL: redis.url, ...quiet };
    await t.startGateway();

    // The gateway holds no replica yet: pausing it is refused as unknown there.
    const early = await dr(['--home', t.home, 'pause', 'web'], env);
    expect(early.code).toBe(2);
    expect(early.err).toMatch(/holds no replica of app "web"/);
    const unknown = await dr(['--home', t.home, 'pause', 'wbe'], env);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/Unknown app "wbe". Did you mean web\?/);

    expect((await dr(['--home', t.home, 'agent', '--app', 'web', '--once'], quiet)).code).toBe(0);
    expect((await dr(['--home', t.home, 'pause', 'web'], env)).code).toBe(0);
    const once = await dr(['--home', t.home, 'agent', '--app', 'web', '--once', '--json'], quiet);
    expect(once.code).toBe(3);
    expect(once.err).toMatch(/replication of app web is paused \(by .+\).*dr resume web/);
    expect(JSON.parse(once.out).error.code).toBe('app_paused');
    // An agent started while paused waits too, and goes on by itself after the resume.
    await scribble(image, 10);
    const agent = startDr(['agent', '--app', 'web', '--tracker', 'scan', '--interval', '300ms'], {
      DR_HOME: t.home,
    });
    await agent.waitFor(/replication paused; waiting for the resume/);
    expect((await dr(['--home', t.home, 'resume', 'web'], env)).code).toBe(0);
    await agent.waitFor(/replication resumed; resyncing/);
    await agent.waitFor(/recovery point committed|no change since the last point/);
    expect(await agent.stop()).toBe(0);
    const out = join(t.dir, 'restored.img');
    expect((await restoreLatest(t, 'a', out)).code).toBe(0);
    expect((await readFile(out)).equals(await readFile(image))).toBe(true);

    const client = await t.client();
    // Bad requests to the gateway name what is wrong and what to send.
    const bad = async (body: unknown) =>
      client.setProtection('web', body as ProtectionState).then(
        () => 'accepted',
        (err: unknown) => errorMessage(err),
      );
    expect(await bad({ state: 'frozen' })).toMatch(/must be failed-over, paused or protected/);
    expect(await bad({ state: 'paused' })).toMatch(/a pause needs "by"/);
    expect(await bad({ state: 'paused', by: 'x'.repeat(201) })).toMatch(/a pause needs "by"/);
    expect(await bad({ state: 'protected', from: 'failed-over' })).toMatch(/"from" can only be/);
    expect((await client.protection('web')).state).toBe('protected');
    await client.setProtection('web', { state: 'failed-over', opId: 'op-12345678' });
    const pause = await dr(['--home', t.home, 'pause', 'web'], env);
    expect(pause.code).toBe(2);
    expect(pause.err).toMatch(/cannot pause app web: it was failed over \(operation op-12345678/);
    const resume = await dr(['--home', t.home, 'resume', 'web'], env);
    expect(resume.code).toBe(2);
    expect(resume.err).toMatch(/cannot resume app web: it was failed over.*dr failback web/);
    expect((await client.protection('web')).state).toBe('failed-over');
  });
});

describe('pause and resume through the policies', () => {
  let h: EngineHome;
  let redis: TestRedis | undefined;
  let e: Engine | undefined;
  beforeEach(async () => {
    h = await engineHome();
  });
  afterEach(async () => {
    await e?.close();
    e = undefined;
    await redis?.stop();
    redis = undefined;
    await h.cleanup();
  });

  it('refuses an unknown identity and a person no policy lets pause, before asking the gateway', async (ctx: TestContext) => {
    const why = redisUnavailable();
    if (why) skipBecause(ctx, why);
    redis = await startRedis();
    e = await startEngine(h, redis.url, testPrefix());
    const stranger = await e.submit(command('slack:USTRANGER', 'pause web'));
    expect(stranger.ok).toBe(false);
    expect(stranger.summary).toMatch(/slack:USTRANGER is not a person in dr.yaml/);
    const dev = await e.submit(command('slack:UDAN', 'resume web'));
    expect(dev.ok).toBe(false);
    expect(dev.decision?.outcome).toBe('deny');
    const typo = await e.submit(command('slack:USAM', 'pause wbe'));
    expect(typo.summary).toBe('Unknown app "wbe". Did you mean web?');
  });
});
