// The RPO monitor knows each app's protection state: paused and failed-over apps raise no replication alerts.
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import { connectRedis } from '../../core/redis.js';
import type { AlertRecord } from '../../engine/alert-store.js';
import type { AuditEntry } from '../../engine/audit-log.js';
import type { Notice } from '../../engine/contract.js';
import type { Engine } from '../../engine/create-engine.js';
import { readNotices } from '../../engine/notice-stream.js';
import { type EngineHome, engineHome, PEOPLE_YAML, testPrefix } from '../helpers/engine-home.js';
import { redisUnavailable, startRedis, type TestRedis } from '../helpers/redis-server.js';
import { skipBecause } from '../helpers/skip.js';
import { until } from '../helpers/wait-for.js';

const problem = redisUnavailable();

// A third app whose alerts show that the monitor has looked again (its ticks are otherwise silent).
const YAML = `${PEOPLE_YAML}  probe:
    tier: dev
    volumes: [{ name: data, path: /tmp/none-probe.img }]
`;

describe('RPO monitor and protection state', () => {
  let redis: TestRedis;
  let h: EngineHome;
  let prefix: string;
  let conn: Redis;
  let engine: Engine | undefined;
  let clock = Date.parse('2026-11-25T10:00:00Z');

  beforeEach(async (ctx: TestContext) => {
    if (problem) skipBecause(ctx, problem);
    redis = await startRedis();
    h = await engineHome(YAML);
    prefix = testPrefix();
    conn = connectRedis(redis.url, 'test');
    clock = Date.parse('2026-11-25T10:00:00Z');
  });

  afterEach(async () => {
    await engine?.close();
    engine = undefined;
    conn?.disconnect();
    await redis?.stop();
    await h?.cleanup();
  });

  /** A published status: the newest consistent point `pointAgoS` ago, the agent heard `seenAgoS` ago. */
  const state = (
    app: string,
    pointAgoS: number,
    seenAgoS: number,
    protection?: { state: 'protected' | 'paused' | 'failed-over'; by?: string; opId?: string },
  ) =>
    JSON.stringify({
      app,
      phase: protection && protection.state !== 'protected' ? 'paused' : 'continuous',
      agent: {
        host: 'src',
        pid: 1,
        lastSeen: new Date(clock - seenAgoS * 1000).toISOString(),
        clockOffsetMs: 0,
      },
      lastPoint: null,
      lastConsistentPoint: {
        id: 1,
        time: new Date(clock - pointAgoS * 1000).toISOString(),
        label: 'crash-consistent',
      },
      backlogBytes: 0,
      ...(protection ? { protection } : {}),
    });
  const publish = (app: string, text: string) => conn.hset(`${prefix}replication`, app, text);
  const notices = async (pred: (n: Notice) => boolean) =>
    (await readNotices(conn, prefix)).map((x) => x.notice).filter(pred);
  const waitNotice = (what: string, pred: (n: Notice) => boolean) =>
    until(what, async () => (await notices(pred))[0], 20_000);
  /** Waits until the monitor has seen `app` over its objective (its breach clock started). */
  const overSince = (app: string) =>
    until(`the monitor to see ${app} behind`, async () =>
      (await conn.hexists(`${prefix}rpo:over-since`, app)) === 1 ? true : undefined,
    );

  it('closes the open alerts of an app paused or failed over, saying why, and raises none for it after', async () => {
    const { createEngine } = await import('../../engine/create-engine.js');
    engine = await createEngine({
      home: h.home,
      config: await h.config(),
      redisUrl: redis.url,
      prefix,
      watchPolicies: false,
      monitorEveryMs: 100,
      now: () => clock,
    });
    await engine.start();

    // web falls behind its objective; shop's agent goes silent: one alert each.
    await publish('web', state('web', 150, 1));
    await publish('shop', state('shop', 2, 300));
    await overSince('web');
    const silent = await waitNotice('shop agent.silent', (n) => n.kind === 'agent.silent');
    clock += 61_000;
    await publish('web', state('web', 211, 1));
    const breach = await waitNotice('web breach', (n) => n.kind === 'rpo.breach');
    expect(breach.app).toBe('web');
    expect(silent.app).toBe('shop');

    // An operator pauses web; shop is failed over. Their alerts close, each saying why.
    await publish('web', state('web', 220, 1, { state: 'paused', by: 'alice' }));
    await publish('shop', state('shop', 2, 400, { state: 'failed-over', opId: 'op-f1' }));
    const webClosed = await waitNotice(
      'web alert closed',
      (n) => n.app === 'web' && n.kind === 'rpo.recovered',
    );
    expect(webClosed.summary).toMatch(
      /^RPO alert AL-\d+ closed: web is paused by alice; replication alerts stay off until `resume web`$/,
    );
    expect(webClosed.key).toBe(breach.key);
    const shopClosed = await waitNotice(
      'shop alert closed',
      (n) => n.app === 'shop' && n.kind === 'agent.silent' && n.severity === 'info',
    );
    expect(shopClosed.summary).toMatch(
      /^Agent alert AL-\d+ closed: shop is failed over \(op-f1\) and runs on the recovered server/,
    );
    expect(await conn.exists(`${prefix}alert:open:rpo:web`)).toBe(0);
    const closedRecord = JSON.parse(
      (await conn.get(`${prefix}alert:${(breach.data as { alert: AlertRecord }).alert.id}`)) ??
        '{}',
    ) as AlertRecord;
    expect(closedRecord.resolvedAt).toBe(clock);
    const audit = (await conn.xrange(`${prefix}audit`, '-', '+')).map(
      ([, f]) => JSON.parse(f[f.indexOf('entry') + 1] ?? '{}') as AuditEntry,
    );
    expect(
      audit
        .filter((e) => e.type === 'alert' && (e.data as { resolved?: boolean }).resolved)
        .map((e) => (e.data as { app: string; closedBecause?: string }).closedBecause)
        .sort(),
    ).toEqual(['failed-over', 'paused']);

    // Ten minutes on, both far behind and unheard: still no alert for either, while the probe's
    // breach shows the monitor kept looking.
    clock += 10 * 60_000;
    await publish('web', state('web', 900, 600, { state: 'paused', by: 'alice' }));
    await publish('shop', state('shop', 900, 900, { state: 'failed-over', opId: 'op-f1' }));
    await publish('probe', state('probe', 150, 1));
    await overSince('probe');
    clock += 61_000;
    await publish('probe', state('probe', 211, 1));
    await waitNotice('probe breach', (n) => n.app === 'probe' && n.kind === 'rpo.breach');
    const raised = await notices(
      (n) => (n.kind === 'rpo.breach' || n.kind === 'agent.silent') && n.severity === 'critical',
    );
    expect(raised.map((n) => n.app).sort()).toEqual(['probe', 'shop', 'web']);

    // Resumed, web is judged afresh: its breach clock starts again from the resume.
    expect(await conn.hexists(`${prefix}rpo:over-since`, 'web')).toBe(0);
    await publish('web', state('web', 211, 1));
    await overSince('web');
    clock += 61_000;
    await publish('web', state('web', 272, 1));
    await until(
      'a new breach of web',
      async () =>
        (await notices((n) => n.app === 'web' && n.kind === 'rpo.breach')).length === 2
          ? true
          : undefined,
      20_000,
    );
  });
});
