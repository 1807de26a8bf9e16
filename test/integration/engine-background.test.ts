import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import { connectRedis } from '../../core/redis.js';
import type { Notice } from '../../engine/contract.js';
import type { Engine } from '../../engine/create-engine.js';
import { ENGINE_QUEUE } from '../../engine/engine-context.js';
import { readNotices } from '../../engine/notice-stream.js';
import { emitEvent } from '../../replicator/jobs/operation-events.js';
import { RECOVERY_QUEUE, recoveryKeys } from '../../replicator/jobs/recovery-contract.js';
import { command, type EngineHome, engineHome, testPrefix } from '../helpers/engine-home.js';
import { redisUnavailable, startRedis, type TestRedis } from '../helpers/redis-server.js';
import { skipBecause } from '../helpers/skip.js';
import { until as untilAnswer } from '../helpers/wait-for.js';

const problem = redisUnavailable();

/** Polls until `probe` answers, failing after `ms`. */
const until = <T>(what: string, probe: () => Promise<T | undefined>, ms = 20_000) =>
  untilAnswer(what, probe, ms);

describe('engine background duties', () => {
  let redis: TestRedis;
  let h: EngineHome;
  let prefix: string;
  let conn: Redis;
  let persist: string | undefined;
  const engines: Engine[] = [];
  const queues: Queue[] = [];
  let clock = Date.parse('2026-11-25T10:00:00Z');

  beforeEach(async (ctx: TestContext) => {
    if (problem) skipBecause(ctx, problem);
    persist = await mkdtemp(join(tmpdir(), 'lifeboat-redis-'));
    redis = await startRedis({ persistDir: persist });
    h = await engineHome();
    prefix = testPrefix();
    conn = connectRedis(redis.url, 'test');
    conn.on('error', () => undefined); // the restart test stops Redis under it; commands wait and retry
    clock = Date.parse('2026-11-25T10:00:00Z');
  });

  afterEach(async () => {
    for (const e of engines.splice(0)) await e.close();
    for (const q of queues.splice(0)) await q.close();
    conn?.disconnect();
    await redis?.stop();
    await h?.cleanup();
    if (persist) await rm(persist, { recursive: true, force: true });
  });

  const engine = async (
    o: { watch?: boolean; start?: boolean; fake?: boolean; monitorEveryMs?: number } = {},
  ) => {
    const { createEngine } = await import('../../engine/create-engine.js');
    const e = await createEngine({
      home: h.home,
      config: await h.config(),
      redisUrl: redis.url,
      prefix,
      watchPolicies: o.watch ?? false,
      monitorEveryMs: o.monitorEveryMs ?? 100,
      ...(o.fake === false ? {} : { now: () => clock }),
    });
    engines.push(e);
    if (o.start !== false) await e.start();
    return e;
  };
  const queue = (name: string) => {
    const q = new Queue(name, { connection: conn, prefix: recoveryKeys(prefix).bullPrefix });
    queues.push(q);
    return q;
  };
  const notices = async (pred: (n: Notice) => boolean) =>
    (await readNotices(conn, prefix)).map((x) => x.notice).filter(pred);
  const waitNotice = (what: string, pred: (n: Notice) => boolean) =>
    until(what, async () => (await notices(pred))[0]);

  it('turns operation events into notices in the asking channel; a drill result carries Clean up', async () => {
    const e = await engine();
    const r = await e.submit(command('slack:UALICE', 'drill web', { channel: 'slack:CHERE' }));
    const opId = r.decision?.outcome === 'allow' ? r.decision.opId : '';
    const events = recoveryKeys(prefix).events;
    await sleep(300); // the consumer group reads from "now"
    await emitEvent(conn, events, { opId, app: 'web', job: 'drill', type: 'started' });
    await emitEvent(conn, events, {
      opId,
      app: 'web',
      job: 'drill',
      type: 'step',
      step: 'materialised',
      progress: 0.5,
    });
    await emitEvent(conn, events, {
      opId,
      app: 'web',
      job: 'drill',
      type: 'step',
      step: 'materialised',
      progress: 1,
    });
    const result = {
      opId,
      app: 'web',
      mode: 'drill',
      point: 3,
      dataAgeSeconds: 2,
      rto: { materialiseMs: 100, launchMs: 200, healthyMs: 300, totalMs: 600 },
      health: { ok: true, output: 'ok' },
      server: { id: 'srv-1' },
      resumes: 0,
    };
    await emitEvent(conn, events, {
      opId,
      app: 'web',
      job: 'drill',
      type: 'finished',
      result: result as never,
    });
    const done = await waitNotice('operation.finished', (n) => n.kind === 'operation.finished');
    expect(done.key).toBe(`op:${opId}`);
    expect(done.targets).toEqual(['slack:CHERE', 'slack:CWEB']);
    expect(done.actions).toEqual([
      { kind: 'cleanup', label: 'Clean up', words: `cleanup ${opId}` },
    ]);
    const kinds = (await notices((n) => n.key === `op:${opId}`)).map((n) => n.kind);
    expect(kinds).toEqual(['operation.started', 'operation.step', 'operation.finished']);
    expect(await conn.get(`${prefix}lastdrill:web`)).not.toBeNull();

    // the cleanup that follows, under the same key
    await emitEvent(conn, events, {
      opId,
      app: 'web',
      job: 'cleanup',
      type: 'finished',
      result: { opId, removed: ['srv-1'] },
    });
    const cleaned = await waitNotice(
      'cleanup finished',
      (n) => n.kind === 'operation.finished' && n.summary.startsWith('Cleanup'),
    );
    expect(cleaned.summary).toBe(`Cleanup of web done: removed srv-1 (${opId})`);
    expect(cleaned.key).toBe(`op:${opId}`);
  });

  it('expires an approval by its delayed job and says so', async () => {
    await writeFile(
      join(h.policies, 'approvals.yaml'),
      'policies:\n  - name: quick\n    when: { verb: failover, tier: prod }\n    approvals: { count: 2, from: [sre-oncall], expires: 1s }\n',
    );
    const e = await engine({ fake: false });
    const asked = await e.submit(command('slack:USAM', 'failover web'));
    const a = asked.decision?.outcome === 'approval' ? asked.decision.approval : undefined;
    const expired = await waitNotice('approval.expired', (n) => n.kind === 'approval.expired');
    expect(expired.key).toBe(`op:${a?.opId}`);
    const late = await e.submit(command('slack:UTOM', `approve ${a?.id}`));
    expect(late.ok).toBe(false);
    expect(late.summary).toMatch(/expired/);
  });

  it('keeps job schedulers in step with the schedule policies, and a scheduled drill passes the policies as the scheduler', async () => {
    const e = await engine({ watch: true });
    const sched = queue(ENGINE_QUEUE);
    const list = async () =>
      (await sched.getJobSchedulers(0, -1)).map((s) => ({
        key: s.key,
        pattern: s.pattern,
        tz: s.tz,
      }));
    await until('the weekly scheduler', async () => ((await list()).length ? true : undefined));
    expect(await list()).toEqual([
      { key: 'policy:weekly-prod-drill:web', pattern: '0 3 * * 0', tz: 'Asia/Shanghai' },
    ]);

    // every second, for the dev app too: the scheduler submits, the policies allow, a drill is queued
    await writeFile(
      join(h.policies, 'schedules.yaml'),
      'policies:\n  - name: often\n    schedule: { cron: "* * * * * *", command: drill }\n',
    );
    await until('the changed schedulers', async () => {
      const keys = (await list()).map((s) => s.key).sort();
      return keys.join() === 'policy:often:shop,policy:often:web' ? true : undefined;
    });
    const drills = queue(RECOVERY_QUEUE);
    const job = await until(
      'a scheduled drill',
      async () => (await drills.getJobs(['waiting']))[0],
    );
    expect(job.data).toMatchObject({ requestedBy: 'scheduler' });
    await unlink(join(h.policies, 'schedules.yaml'));
    await until('the schedulers removed', async () =>
      (await list()).length === 0 ? true : undefined,
    );
    expect(e).toBeDefined();
  });

  it('tells the app and alert channels when a scheduled command is refused', async () => {
    await writeFile(
      join(h.policies, 'schedules.yaml'),
      'policies:\n  - name: bad-idea\n    when: { app: shop }\n    schedule: { cron: "* * * * * *", command: failover }\n',
    );
    await engine();
    const n = await waitNotice('the refusal', (x) => x.kind === 'operation.failed');
    expect(n.key).toBe('schedule:bad-idea:shop');
    expect(n.targets).toEqual(['slack:CALERTS']);
    expect(n.summary).toMatch(
      /Scheduled failover of shop \(policy bad-idea\) did not start: Denied: no policy lets scheduler failover shop/,
    );
    expect(await queue(RECOVERY_QUEUE).getJobs(['waiting'])).toEqual([]);
  });

  it('refuses a bad policy file, denies every action until it is fixed, tells the admin channel once', async () => {
    const e = await engine({ watch: true });
    await writeFile(
      join(h.policies, 'bad.yaml'),
      'policies:\n  - name: oops\n    when: { tierr: prod }\n    deny: no\n',
    );
    const alert = await waitNotice('policy.invalid', (n) => n.kind === 'policy.invalid');
    expect(alert.targets).toEqual(['slack:CADMIN']);
    expect(alert.details?.[0]).toMatch(/bad\.yaml:3: when: unknown fact "tierr"/);
    const still = await e.submit(command('slack:UALICE', 'drill web'));
    expect(still.ok).toBe(false); // fails closed, as at start-up
    expect(still.summary).toMatch(
      /no valid policy set is loaded \(.*bad\.yaml:3: when: unknown fact "tierr"/,
    );
    await writeFile(
      join(h.policies, 'bad.yaml'),
      'policies:\n  - name: freeze\n    when: { verb: drill }\n    deny: drills are frozen\n',
    );
    await until('the fixed file in force', async () =>
      e.policies().set?.policies.some((p) => p.name === 'freeze') ? true : undefined,
    );
    const frozen = await e.submit(command('slack:UALICE', 'drill shop'));
    expect(frozen.summary).toContain('drills are frozen');
    expect(await notices((n) => n.kind === 'policy.invalid')).toHaveLength(1);
  });

  it('raises one RPO breach per breach across two engines, acknowledges, escalates the unacknowledged, recovers', async () => {
    const state = (app: string, pointAgoS: number, seenAgoS = 1) =>
      JSON.stringify({
        app,
        phase: 'continuous',
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
      });
    const key = `${prefix}replication`;
    await engine();
    await engine();
    await conn.hset(key, 'web', state('web', 5), 'shop', state('shop', 5));
    await sleep(400);
    expect(await notices((n) => n.kind.startsWith('rpo.'))).toEqual([]);
    await conn.hset(key, 'web', state('web', 90), 'shop', state('shop', 90));
    await sleep(400); // over the objective, but not yet for a minute
    expect(await notices((n) => n.kind === 'rpo.breach')).toEqual([]);
    clock += 61_000;
    await conn.hset(key, 'web', state('web', 150), 'shop', state('shop', 150));
    await until('two breaches', async () =>
      (await notices((n) => n.kind === 'rpo.breach')).length === 2 ? true : undefined,
    );
    await sleep(500); // more looks, by both engines: no second notice for the same breach
    const breaches = await notices((n) => n.kind === 'rpo.breach');
    expect(breaches).toHaveLength(2);
    const web = breaches.find((n) => n.app === 'web');
    expect(web?.targets).toEqual(['slack:CWEB', 'slack:CALERTS']);
    expect(web?.summary).toMatch(/RPO breach: web is \d+ s behind \(objective 60 s\)/);
    const ackWords = web?.actions?.[0]?.words ?? '';
    expect(ackWords).toMatch(/^ack AL-\d+$/);
    const [e1] = engines;
    const acked = await e1?.submit(command('slack:UDAN', ackWords));
    expect(acked?.ok).toBe(true);
    const twice = await e1?.submit(command('slack:USAM', ackWords));
    expect(twice?.summary).toMatch(/already acknowledged by dan/);

    clock += 16 * 60_000; // past escalateAfter: only the unacknowledged one is escalated
    await conn.hset(key, 'web', state('web', 1100), 'shop', state('shop', 1100));
    const esc = await waitNotice('escalation', (n) => n.kind === 'alert.escalated');
    expect(esc.app).toBe('shop');
    expect(esc.targets).toEqual(['slack:CESC']);
    await sleep(400);
    expect(await notices((n) => n.kind === 'alert.escalated')).toHaveLength(1);

    await conn.hset(key, 'web', state('web', 2), 'shop', state('shop', 2));
    await until('two recoveries', async () =>
      (await notices((n) => n.kind === 'rpo.recovered')).length === 2 ? true : undefined,
    );
    const rec = await notices((n) => n.kind === 'rpo.recovered' && n.app === 'web');
    expect(rec[0]?.key).toBe(web?.key);
  });

  it("raises agent.silent when an agent goes unheard, to the policy's own channels too", async () => {
    await writeFile(
      join(h.policies, 'alerts.yaml'),
      'policies:\n  - name: silent\n    alert: { on: agent-silent, for: 2m, to: [dingtalk:cidOPS] }\n',
    );
    await engine();
    const stale = JSON.stringify({
      app: 'web',
      phase: 'stalled',
      agent: {
        host: 'src',
        pid: 1,
        lastSeen: new Date(clock - 5 * 60_000).toISOString(),
        clockOffsetMs: 0,
      },
      lastPoint: null,
      lastConsistentPoint: {
        id: 1,
        time: new Date(clock - 2000).toISOString(),
        label: 'crash-consistent',
      },
    });
    await conn.hset(`${prefix}replication`, 'web', stale);
    const n = await waitNotice('agent.silent', (x) => x.kind === 'agent.silent');
    expect(n.summary).toMatch(/agent of web on src has not been heard for 5m/);
    expect(n.actions?.[0]?.kind).toBe('ack');
    expect(n.targets).toEqual(['slack:CWEB', 'slack:CALERTS', 'dingtalk:cidOPS']);
  });

  it('queues, at start, an approval granted by a process that stopped before queuing it', async () => {
    const { ApprovalStore } = await import('../../engine/approval-store.js');
    const store = new ApprovalStore(conn, prefix);
    const id = await store.nextId();
    await store.create({
      id,
      opId: 'op-crashed0001',
      verb: 'failover',
      app: 'web',
      requestedBy: 'slack:USAM',
      requestedPerson: 'sam',
      required: 2,
      groups: ['sre-oncall'],
      approvals: [
        { actor: 'slack:UTOM', person: 'tom', at: new Date(clock).toISOString() },
        { actor: 'slack:UUMA', person: 'uma', at: new Date(clock).toISOString() },
      ],
      status: 'granted',
      expiresAt: new Date(clock + 60_000).toISOString(),
      expiresAtMs: clock + 60_000,
      policy: 'prod-failover-two-approvals',
      args: {},
    });
    await engine();
    await engine(); // two engines start at once: still one job, one sweep
    const jobs = await queue(RECOVERY_QUEUE).getJobs(['waiting']);
    expect(jobs.map((j) => j.id)).toEqual(['op-crashed0001']);
    expect((await store.get(id))?.enqueued).toBe('queued');
    const audit = await conn.xrange(`${prefix}audit`, '-', '+');
    expect(audit.filter(([, f]) => f.join().includes('"state":"queued"'))).toHaveLength(1);
  });

  it('keeps one audit chain when two processes append at once', async () => {
    const { AuditLog, verifyAudit } = await import('../../engine/audit-log.js');
    const other = connectRedis(redis.url, 'test-2');
    try {
      const [a, b] = [new AuditLog(conn, prefix), new AuditLog(other, prefix)];
      await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          (i % 2 ? a : b).append('command', { i }, `slack:U${i}`),
        ),
      );
      const r = await verifyAudit(a.entries(), await a.head());
      expect(r).toEqual({ count: 200, problems: [] });
    } finally {
      other.disconnect();
    }
  });

  it('Redis restarted between approvals: nothing lost, nothing doubled', async () => {
    const e = await engine({ start: false });
    const asked = await e.submit(command('slack:USAM', 'failover web'));
    const a = asked.decision?.outcome === 'approval' ? asked.decision.approval : undefined;
    const first = await e.submit(command('slack:UTOM', `approve ${a?.id}`));
    expect(first.summary).toMatch(/1 of 2/);
    await redis.restart(200);
    const again = await e.submit(command('slack:UTOM', `approve ${a?.id}`));
    expect(again.summary).toMatch(/already approved/);
    const second = await e.submit(command('slack:UUMA', `approve ${a?.id}`));
    expect(second.summary).toMatch(/queued as op-/);
    const jobs = await queue(RECOVERY_QUEUE).getJobs(['waiting']);
    expect(jobs.map((j) => j.id)).toEqual([a?.opId]);
    const stored = JSON.parse((await conn.get(`${prefix}approval:${a?.id}`)) ?? '{}');
    expect(stored.approvals.map((x: { person: string }) => x.person)).toEqual(['tom', 'uma']);
  });
});
