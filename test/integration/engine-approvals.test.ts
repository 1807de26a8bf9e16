import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import { connectRedis } from '../../core/redis.js';
import type { Engine } from '../../engine/create-engine.js';
import { readNotices } from '../../engine/notice-stream.js';
import { RECOVERY_QUEUE, recoveryKeys } from '../../replicator/jobs/recovery-contract.js';
import {
  command,
  type EngineHome,
  engineHome,
  startEngine,
  testPrefix,
} from '../helpers/engine-home.js';
import { redisUnavailable, startRedis, type TestRedis } from '../helpers/redis-server.js';
import { skipBecause } from '../helpers/skip.js';

const problem = redisUnavailable();
const pressScript = fileURLToPath(new URL('../fixtures/press-approvals.mjs', import.meta.url));

describe('engine: decisions and approvals', () => {
  let redis: TestRedis;
  let h: EngineHome;
  let prefix: string;
  let conn: Redis;
  let queue: Queue;
  const engines: Engine[] = [];
  let clock = Date.parse('2026-11-25T10:00:00Z'); // a Wednesday, outside the change window

  beforeEach(async (ctx: TestContext) => {
    if (problem) skipBecause(ctx, problem);
    redis = await startRedis();
    h = await engineHome();
    prefix = testPrefix();
    conn = connectRedis(redis.url, 'test');
    queue = new Queue(RECOVERY_QUEUE, {
      connection: conn,
      prefix: recoveryKeys(prefix).bullPrefix,
    });
    clock = Date.parse('2026-11-25T10:00:00Z');
  });

  afterEach(async () => {
    for (const e of engines.splice(0)) await e.close();
    await queue?.close();
    conn?.disconnect();
    await redis?.stop();
    await h?.cleanup();
  });

  const engine = async () => {
    const e = await startEngine(h, redis.url, prefix, { now: () => clock });
    engines.push(e);
    return e;
  };
  const jobs = async () =>
    (await queue.getJobs(['waiting', 'delayed', 'active', 'completed', 'failed', 'prioritized']))
      .length;

  it('lets an owner drill their app: one job, id = op id, and says which policy allowed it', async () => {
    const e = await engine();
    const r = await e.submit(command('slack:UALICE', 'drill web'));
    expect(r.ok).toBe(true);
    expect(r.decision?.outcome).toBe('allow');
    const opId = r.decision?.outcome === 'allow' ? r.decision.opId : '';
    expect(r.summary).toContain('owners-may-drill');
    expect(r.thread).toBe(`op:${opId}`);
    const job = await queue.getJob(opId);
    expect(job?.name).toBe('drill');
    expect(job?.data).toMatchObject({ app: 'web', opId, requestedBy: 'slack:UALICE' });
  });

  it('lets unknown identities read but not act, and suggests the app meant', async () => {
    const e = await engine();
    const denied = await e.submit(command('slack:USTRANGER', 'drill web'));
    expect(denied.ok).toBe(false);
    expect(denied.decision?.outcome).toBe('deny');
    expect(denied.summary).toMatch(/may only read/);
    const status = await e.submit(command('slack:USTRANGER', 'status'));
    expect(status.ok).toBe(true);
    const typo = await e.submit(command('slack:UALICE', 'drill wbe'));
    expect(typo.ok).toBe(false);
    expect(typo.summary).toContain('Did you mean web?');
    expect(await jobs()).toBe(0);
  });

  it('refuses a drill no policy allows, naming the default deny', async () => {
    const e = await engine();
    const r = await e.submit(command('slack:UDAN', 'drill web'));
    expect(r.ok).toBe(false);
    expect(r.decision?.outcome === 'deny' && r.decision.policy).toBe('(default deny)');
    expect(await jobs()).toBe(0);
  });

  it('a warn-mode policy warns in the reply and does not stop the failover', async () => {
    const e = await engine();
    await conn.set(`${prefix}lastdrill:shop`, String(clock - 40 * 86_400_000));
    const r = await e.submit(command('slack:USAM', 'failover shop'));
    expect(r.decision?.outcome).toBe('allow');
    expect(r.details).toEqual([
      'policy failover-without-recent-drill (warn) would deny: the last successful drill of this app is over 30 days old; drill it once it is back',
    ]);
    expect(await jobs()).toBe(1);
  });

  it('a dry run explains and queues nothing', async () => {
    const e = await engine();
    const r = await e.submit(command('slack:USAM', 'failover web --dry-run'));
    expect(r.decision).toMatchObject({ outcome: 'dryrun', would: 'approval' });
    expect(await jobs()).toBe(0);
  });

  it('prod failover: requester, non-member and repeat presses do not count; the second distinct SRE starts it once', async () => {
    const e = await engine();
    const asked = await e.submit(command('slack:USAM', 'failover web'));
    expect(asked.decision?.outcome).toBe('approval');
    const a = asked.decision?.outcome === 'approval' ? asked.decision.approval : undefined;
    expect(a).toMatchObject({ required: 2, groups: ['sre-oncall'], status: 'pending' });
    const id = a?.id ?? '';
    expect(asked.actions?.map((x) => x.words)).toEqual([`approve ${id}`, `reject ${id}`]);

    const self = await e.submit(command('slack:USAM', `approve ${id}`));
    expect(self.ok).toBe(false);
    expect(self.summary).toMatch(/someone else/);
    const outsider = await e.submit(command('slack:UALICE', `approve ${id}`));
    expect(outsider.ok).toBe(false);
    expect(outsider.summary).toMatch(/Only members of sre-oncall/);
    const first = await e.submit(command('slack:UTOM', `approve ${id}`));
    expect(first.summary).toMatch(/1 of 2/);
    const again = await e.submit(command('dingtalk:1001', `approve ${id}`)); // tom again, other surface
    expect(again.summary).toMatch(/already approved/);
    expect(await jobs()).toBe(0);
    const second = await e.submit(command('slack:UUMA', `approve ${id}`));
    expect(second.ok).toBe(true);
    expect(second.summary).toMatch(/queued as op-/);
    expect(await jobs()).toBe(1);
    expect((await queue.getJob(a?.opId ?? ''))?.name).toBe('failover');
    const late = await e.submit(command('slack:UROOT', `approve ${id}`));
    expect(late.ok).toBe(false); // unknown identity
    expect(await jobs()).toBe(1);

    const notices = (await readNotices(conn, prefix)).map((n) => n.notice);
    const mine = notices.filter((n) => n.key === `op:${a?.opId}`).map((n) => n.kind);
    expect(mine).toEqual(['approval.requested', 'approval.updated', 'approval.granted']);
    const requested = notices.find((n) => n.kind === 'approval.requested');
    expect(requested?.targets).toEqual(['slack:CASK', 'slack:CWEB']);
  });

  it('refuses approval after expiry, after a rejection, and for a cancelled operation', async () => {
    const e = await engine();
    const idOf = (r: Awaited<ReturnType<Engine['submit']>>) =>
      r.decision?.outcome === 'approval' ? r.decision.approval.id : '';
    // expiry (the clock moves past 30 min)
    const one = idOf(await e.submit(command('slack:USAM', 'failover web')));
    clock += 31 * 60_000;
    const expired = await e.submit(command('slack:UTOM', `approve ${one}`));
    expect(expired.ok).toBe(false);
    expect(expired.summary).toMatch(/expired/);
    // rejection
    const two = idOf(await e.submit(command('slack:USAM', 'failover web')));
    const rejected = await e.submit(command('slack:UTOM', `reject ${two}`));
    expect(rejected.summary).toMatch(/Rejected/);
    const after = await e.submit(command('slack:UUMA', `approve ${two}`));
    expect(after.ok).toBe(false);
    expect(after.summary).toMatch(/rejected by tom/);
    // cancelled
    const three = idOf(await e.submit(command('slack:USAM', 'failover web')));
    const cancelled = await e.submit(command('slack:USAM', `cancel ${three}`));
    expect(cancelled.summary).toMatch(/Cancelled/);
    await e.submit(command('slack:UTOM', `approve ${three}`));
    const last = await e.submit(command('slack:UUMA', `approve ${three}`));
    expect(last.ok).toBe(false);
    expect(last.summary).toMatch(/cancelled/);
    expect(await jobs()).toBe(0);
    const kinds = (await readNotices(conn, prefix)).map((n) => n.notice.kind);
    expect(kinds).toContain('approval.expired');
    expect(kinds).toContain('approval.rejected');
  });

  it('100 concurrent presses through two engines enqueue exactly one job', async () => {
    const [e1, e2] = [await engine(), await engine()];
    const asked = await e1.submit(command('slack:USAM', 'failover web'));
    const a = asked.decision?.outcome === 'approval' ? asked.decision.approval : undefined;
    const voters = ['slack:UTOM', 'slack:UUMA', 'dingtalk:1001', 'slack:USAM', 'slack:UALICE'];
    const presses = Array.from({ length: 100 }, (_, i) =>
      (i % 2 ? e1 : e2).submit(command(voters[i % voters.length] ?? '', `approve ${a?.id}`)),
    );
    const replies = await Promise.all(presses);
    expect(replies.filter((r) => /queued as op-/.test(r.summary))).toHaveLength(1);
    expect(await jobs()).toBe(1);
    const stored = JSON.parse((await conn.get(`${prefix}approval:${a?.id}`)) ?? '{}');
    expect(stored.status).toBe('granted');
    expect(stored.approvals.map((x: { person: string }) => x.person).sort()).toEqual([
      'tom',
      'uma',
    ]);
  });

  it('100 presses at the same instant through two processes enqueue exactly one job', async () => {
    clock = Date.now(); // the press processes run on the real clock
    const e = await engine();
    const asked = await e.submit(command('slack:USAM', 'failover web'));
    const a = asked.decision?.outcome === 'approval' ? asked.decision.approval : undefined;
    const voters = 'slack:UTOM,slack:UUMA,dingtalk:1001,slack:USAM,slack:UALICE';
    const procs = [0, 1].map(() => {
      const child = spawn(
        process.execPath,
        [pressScript, redis.url, prefix, h.home, a?.id ?? '', voters, '10'],
        {
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      let out = '';
      child.stdout?.on('data', (c: Buffer) => {
        out += c.toString();
      });
      const done = new Promise<string>((resolve) => child.on('exit', () => resolve(out)));
      return { child, out: () => out, done };
    });
    try {
      const end = Date.now() + 30_000;
      while (!procs.every((p) => p.out().includes('ready'))) {
        if (Date.now() > end) throw new Error('the press processes did not start');
        await sleep(50);
      }
      await conn.set(`${prefix}go`, '1');
      const outputs = await Promise.all(procs.map((p) => p.done));
      const summaries = outputs.flatMap((o) => JSON.parse(o.split('\n')[1] ?? '[]') as string[]);
      expect(summaries).toHaveLength(100);
      expect(summaries.filter((s) => /queued as op-/.test(s))).toHaveLength(1);
    } finally {
      for (const p of procs) p.child.kill('SIGKILL');
    }
    expect(await jobs()).toBe(1);
    const stored = JSON.parse((await conn.get(`${prefix}approval:${a?.id}`)) ?? '{}');
    expect(stored.approvals).toHaveLength(2);
  });

  it('an approved operation that cannot start (the app is busy) says so, once', async () => {
    const e = await engine();
    const asked = await e.submit(command('slack:USAM', 'failover web'));
    const a = asked.decision?.outcome === 'approval' ? asked.decision.approval : undefined;
    const drill = await e.submit(command('slack:UALICE', 'drill web'));
    expect(drill.ok).toBe(true);
    await e.submit(command('slack:UTOM', `approve ${a?.id}`));
    const last = await e.submit(command('slack:UUMA', `approve ${a?.id}`));
    expect(last.ok).toBe(false);
    expect(last.summary).toMatch(/could not start: web is busy: drill op-/);
    expect(await jobs()).toBe(1);
    const failed = (await readNotices(conn, prefix)).filter(
      (n) => n.notice.kind === 'operation.failed',
    );
    expect(failed).toHaveLength(1);
    expect(failed[0]?.notice.key).toBe(`op:${a?.opId}`);
    const again = await e.submit(command('slack:UUMA', `approve ${a?.id}`));
    expect(again.summary).toMatch(/already approved; .* is refused: web is busy/);
  });

  it('a redelivered command (same id) is answered once, not run twice', async () => {
    const e = await engine();
    const c = command('slack:UALICE', 'drill web');
    const [r1, r2] = [await e.submit(c), await e.submit(c)];
    expect(r1.ok).toBe(true);
    expect(r2.summary).toBe(r1.summary);
    expect(await jobs()).toBe(1);
  });

  it('failback of prod outside the change window is denied unless --emergency', async () => {
    const e = await engine();
    const denied = await e.submit(command('slack:USAM', 'failback web'));
    expect(denied.ok).toBe(false);
    expect(denied.decision?.outcome === 'deny' && denied.decision.policy).toBe(
      'failback-in-change-window',
    );
    const emergency = await e.submit(command('slack:USAM', 'failback web --emergency'));
    expect(emergency.ok).toBe(true);
    expect((await queue.getJobs(['waiting']))[0]?.name).toBe('failback');
  });

  it('answers status, history and policy list/explain to anyone', async () => {
    const e = await engine();
    const lastConsistentPoint = {
      id: 7,
      time: new Date(clock - 12_000).toISOString(),
      label: 'app-consistent',
    };
    await conn.hset(
      `${prefix}replication`,
      'web',
      JSON.stringify({
        app: 'web',
        phase: 'continuous',
        lastPoint: lastConsistentPoint,
        lastConsistentPoint,
        backlogBytes: 0,
      }),
    );
    const status = await e.submit(command('slack:USTRANGER', 'status'));
    expect(status.ok).toBe(true);
    expect(status.details).toEqual([
      'shop: no replication state published (is `dr gateway` running with REDIS_URL?)',
      'web: continuous, RPO 12.0 s, last point #7 app-consistent, backlog 0 B',
    ]);
    // The agent's own last point beside the gateway's: a gateway behind its agent shows.
    await conn.hset(
      `${prefix}replication`,
      'web',
      JSON.stringify({
        app: 'web',
        phase: 'continuous',
        lastPoint: lastConsistentPoint,
        lastConsistentPoint,
        agentLastPoint: { id: 9, time: lastConsistentPoint.time, label: 'app-consistent' },
        backlogBytes: 0,
      }),
    );
    const behind = await e.submit(command('slack:USTRANGER', 'status web'));
    expect(behind.details).toEqual([
      "web: continuous, RPO 12.0 s, last point #7 app-consistent, backlog 0 B; WARNING: the agent committed point #9 but the gateway's latest is #7 (lost, rolled back or withheld)",
    ]);
    await e.submit(command('slack:UALICE', 'drill web'));
    const history = await e.submit(command('slack:USTRANGER', 'history web'));
    expect(
      history.details?.some((l) => l.includes('drill web: allow (policy owners-may-drill)')),
      history.details?.join('\n'),
    ).toBe(true);
    expect(history.details?.every((l) => !l.includes('{'))).toBe(true); // lines, not raw JSON
    const list = await e.submit({ ...command('slack:USTRANGER', 'policy'), args: { sub: 'list' } });
    expect(list.summary).toBe('11 policies in force');
    const explain = await e.submit({
      ...command('slack:UDAN', 'policy'),
      args: { sub: 'explain', words: ['drill', 'web'] },
    });
    expect(explain.summary).toMatch(/^drill web as dan: DENY/);
    expect(explain.details).toContain('    FAIL  isOwner equal true (is false)');
    const typo = await e.submit({
      ...command('slack:UDAN', 'policy'),
      args: { sub: 'explain', words: ['failover', 'wbe'] },
    });
    expect(typo.summary).toContain('Did you mean web?');
  });

  it('garbage commands get a reason, never a throw', async () => {
    const e = await engine();
    for (const bad of [
      { ...command('slack:USAM', 'drill web'), verb: 'explode' },
      { ...command('slack:USAM', 'drill web'), actor: '' },
      { ...command('slack:USAM', 'approve A-x') },
      { ...command('slack:USAM', 'approve A-999') },
      { ...command('slack:USAM', 'ack nothing') },
      { ...command('slack:USAM', 'drill web'), args: { point: -3 } },
      { ...command('slack:USAM', 'drill web'), args: { keepMs: Number.NaN } },
      { ...command('slack:USAM', 'failover shop'), args: { keepMs: 60_000 } },
    ]) {
      const r = await e.submit(bad as never);
      expect(r.ok).toBe(false);
      expect(r.summary.length).toBeGreaterThan(5);
    }
  });
});
