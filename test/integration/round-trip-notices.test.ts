// What the round trip says in chat and the audit log: an unfenced failover, a failback protected again or not.
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import { plainText } from '../../bot/plain-text.js';
import { slackMessage } from '../../bot/slack/slack-blocks.js';
import { silentLog } from '../../core/log.js';
import { connectRedis } from '../../core/redis.js';
import type { Notice } from '../../engine/contract.js';
import type { Engine } from '../../engine/create-engine.js';
import { readNotices } from '../../engine/notice-stream.js';
import { emitEvent } from '../../replicator/jobs/operation-events.js';
import {
  type FailbackResult,
  type OperationResult,
  type ReprotectOutcome,
  recoveryKeys,
} from '../../replicator/jobs/recovery-contract.js';
import { fenceSource } from '../../replicator/recovery/fence-source.js';
import { type EngineHome, engineHome, testPrefix } from '../helpers/engine-home.js';
import { redisUnavailable, startRedis, type TestRedis } from '../helpers/redis-server.js';
import { skipBecause } from '../helpers/skip.js';
import { until } from '../helpers/wait-for.js';

const problem = redisUnavailable();
const VOLUMES = [{ name: 'data', path: '/tmp/none-web.img' }] as never;

describe('round-trip notices in chat and the audit log', () => {
  let redis: TestRedis;
  let h: EngineHome;
  let prefix: string;
  let conn: Redis;
  let engine: Engine | undefined;

  beforeEach(async (ctx: TestContext) => {
    if (problem) skipBecause(ctx, problem);
    redis = await startRedis();
    h = await engineHome();
    prefix = testPrefix();
    conn = connectRedis(redis.url, 'test');
    const { createEngine } = await import('../../engine/create-engine.js');
    engine = await createEngine({
      home: h.home,
      config: await h.config(),
      redisUrl: redis.url,
      prefix,
      watchPolicies: false,
    });
    await engine.start();
  });

  afterEach(async () => {
    await engine?.close();
    engine = undefined;
    conn?.disconnect();
    await redis?.stop();
    await h?.cleanup();
  });

  /** Emits `finished` with `result` until the engine's notice for it shows (its group reads from "now"). */
  const finish = async (opId: string, job: 'failover' | 'failback', result: unknown) => {
    const events = recoveryKeys(prefix).events;
    return until(
      `the ${job} notice of ${opId}`,
      async () => {
        const n = (await readNotices(conn, prefix))
          .map((x) => x.notice)
          .find((x: Notice) => x.key === `op:${opId}` && x.kind === 'operation.finished');
        if (n) return n;
        if (!(await conn.exists(`${prefix}audit`)) || !(await audited(opId))) {
          await emitEvent(conn, events, {
            opId,
            app: 'web',
            job,
            type: 'finished',
            result: result as never,
          });
        }
        return undefined;
      },
      30_000,
    );
  };
  /** The audit log's result entry of `opId`, as its JSON text. */
  const audited = async (opId: string) =>
    (await conn.xrange(`${prefix}audit`, '-', '+'))
      .map(([, f]) => f.join(' '))
      .find((t) => t.includes('"result"') && t.includes(opId));
  const auditedResult = (opId: string) =>
    until(`the audit entry of ${opId}`, () => audited(opId), 30_000);

  const failover = (opId: string, fence: OperationResult['fence']): OperationResult =>
    ({
      opId,
      app: 'web',
      mode: 'failover',
      point: 7,
      dataAgeSeconds: 3,
      rto: { materialiseMs: 100, launchMs: 200, healthyMs: 300, totalMs: 600 },
      health: { ok: true, output: 'ok', ms: 300 },
      server: { provider: 'local', id: 'local:x', details: {} },
      resumes: 0,
      ...(fence ? { fence } : {}),
    }) as OperationResult;

  it('a failover without a fence says "source NOT fenced" and what to do: in its result, its chat message and the audit log', async () => {
    const opId = 'op-nofence0001';
    // The real outcome of a failover with no fence command.
    const fence = await fenceSource(
      'web',
      opId,
      { volumes: VOLUMES, fenceTimeout: 5000 },
      silentLog,
    );
    const todo =
      'if it still runs, stop it and unmount its volumes now, or two copies take writes; give the app one with `dr app add web … --fence CMD`';
    expect(fence.fenced).toBe(false);
    expect(fence.detail).toContain(todo);

    const n = await finish(opId, 'failover', failover(opId, fence));
    expect(n.severity).toBe('warning');
    expect(n.summary).toBe(
      `Failover of web is healthy (${opId}): point 7, data age 3 s, RTO 600ms; source NOT fenced`,
    );
    expect(n.details?.[0]).toBe(fence.detail);
    // The chat message: Slack (details inline) and the console both carry the what-to-do line.
    const slack = slackMessage(n);
    expect(slack.text).toContain('source NOT fenced');
    expect(JSON.stringify(slack.blocks)).toContain('stop it and unmount its volumes now');
    const text = plainText(n);
    expect(text).toContain('source NOT fenced');
    expect(text).toContain(todo);
    // The audit log keeps the result with the same words.
    const entry = await auditedResult(opId);
    expect(entry).toContain('"fenced":false');
    expect(entry).toContain('stop it and unmount its volumes now');
  });

  it('a failover whose fence command fails says the source was NOT fenced, why, and what to do', async () => {
    const opId = 'op-badfence001';
    const fence = await fenceSource(
      'web',
      opId,
      {
        volumes: VOLUMES,
        fence: 'echo "ssh: connect to host source: No route" >&2; exit 3',
        fenceTimeout: 5000,
      },
      silentLog,
    );
    const n = await finish(opId, 'failover', failover(opId, fence));
    expect(n.severity).toBe('warning');
    expect(n.summary).toMatch(/; source NOT fenced$/);
    expect(plainText(n)).toContain(
      'the source of web was NOT fenced: the fence command exited 3: ssh: connect to host source: No route; if the source still runs, stop it and unmount its volumes by hand now',
    );
    expect(await auditedResult(opId)).toContain('the fence command exited 3');
  });

  it('a fenced failover says so, as information', async () => {
    const opId = 'op-fenced00001';
    const fence = await fenceSource(
      'web',
      opId,
      { volumes: VOLUMES, fence: 'exit 0', fenceTimeout: 5000 },
      silentLog,
    );
    const n = await finish(opId, 'failover', failover(opId, fence));
    expect(n.severity).toBe('info');
    expect(n.summary).toMatch(/; source fenced$/);
  });

  const failback = (opId: string, protection: ReprotectOutcome): FailbackResult => ({
    opId,
    app: 'web',
    mode: 'failback',
    failoverOpId: 'op-nofence0001',
    volumes: [{ name: 'data', size: 4 << 20, blocks: 64, blocksSent: 5, bytesSent: 5 << 16 }],
    bytesSent: 5 << 16,
    size: 4 << 20,
    precopyMs: 900,
    downtimeMs: 250,
    totalMs: 3000,
    resumes: 0,
    removed: [],
    unfenced: true,
    quiesce: { how: 'frozen', hook: false, mounts: ['/srv/dr/mnt'] },
    protection,
  });

  it('a completed failback ends "protected again, RPO N s"', async () => {
    const opId = 'op-failback001';
    const n = await finish(
      opId,
      'failback',
      failback(opId, {
        protected: true,
        point: 42,
        rpoSeconds: 2,
        blocksResent: 5,
        detail:
          'protected again, RPO 2 s (point 42: the agent resent 5 block(s), failback wrote 5)',
      }),
    );
    expect(n.severity).toBe('info');
    expect(n.summary).toBe(
      `Failback of web done (${opId}): 320 KiB written back, downtime 250ms, total 3.0s; protected again, RPO 2 s`,
    );
    expect(n.details).toEqual([
      'protected again, RPO 2 s (point 42: the agent resent 5 block(s), failback wrote 5)',
    ]);
    expect(slackMessage(n).text).toMatch(/protected again, RPO 2 s$/);
    expect(await auditedResult(opId)).toContain('"protected":true');
  });

  it('a failback the agent did not follow says it is not protected, why, and what to do, as critical', async () => {
    const opId = 'op-failback002';
    const why =
      'not protected yet: no recovery point of web within 2m of the switch back; start its agent (`dr agent --app web`, or restart `dr up` / the lifeboat-agent@web service): it resends only what failback wrote';
    const n = await finish(opId, 'failback', failback(opId, { protected: false, detail: why }));
    expect(n.severity).toBe('critical');
    expect(n.summary).toMatch(/; not protected yet: no recovery point of web within 2m/);
    expect(n.summary.endsWith('it resends only what failback wrote')).toBe(true);
    expect(plainText(n)).toContain('start its agent (`dr agent --app web`');
    expect(await auditedResult(opId)).toContain('"protected":false');
  });
});
