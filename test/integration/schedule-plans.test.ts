import { unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Notice } from '../../engine/contract.js';
import { ENGINE_QUEUE, opMetaKey } from '../../engine/engine-context.js';
import { readNotices } from '../../engine/notice-stream.js';
import { emitEvent } from '../../replicator/jobs/operation-events.js';
import type { PlanJob, PlanRun } from '../../replicator/jobs/plan-contract.js';
import { RECOVERY_QUEUE, recoveryKeys } from '../../replicator/jobs/recovery-contract.js';
import { command } from '../helpers/engine-home.js';
import { type EngineRig, startEngineRig } from '../helpers/engine-rig.js';
import { redisUnavailable } from '../helpers/redis-server.js';
import { skipBecause } from '../helpers/skip.js';
import { waitFor } from '../helpers/wait-for.js';

/**
 * `schedule.plans`: a schedule policy that names plans makes one job scheduler per plan, and each
 * firing submits the plan as the scheduler: judged as one operation by the same policies, queued as
 * one plan job. Bad inputs: an unknown plan (refused on load, accepted once the plan file exists),
 * a plan whose files fail lint (the firing is refused and told, with the file and line).
 */
const problem = redisUnavailable();
const STORE = 'groups:\n  - apps: [shop]\n  - apps: [web]\n';

describe('scheduled plan runs', () => {
  let rig: EngineRig;
  let sched: Queue;
  let recovery: Queue;
  const policyFile = () => join(rig.h.policies, 'plan-schedules.yaml');
  const schedule = (name: string, extra: string) =>
    writeFile(
      policyFile(),
      `policies:\n  - name: ${name}\n    schedule:\n      cron: "* * * * * *"\n${extra}`,
    );
  const schedulers = async () =>
    (await sched.getJobSchedulers(0, -1))
      .map((s) => s.key)
      .filter((k) => !k.startsWith('policy:weekly-prod-drill:'))
      .sort();
  const planJobs = async () =>
    (await recovery.getJobs(['waiting', 'delayed', 'prioritized'])).filter(
      (j) => j.name === 'plan',
    );
  const notice = (what: string, pred: (n: Notice) => boolean) =>
    waitFor(
      what,
      async () => (await readNotices(rig.conn, rig.prefix)).map((x) => x.notice).find(pred),
      60_000,
    );
  const clear = async () => {
    await unlink(policyFile()).catch(() => undefined); // not written by every test
    await waitFor('the plan schedulers removed', async () =>
      (await schedulers()).length === 0 ? true : undefined,
    );
    for (const j of await planJobs()) await j.remove();
  };

  beforeAll(async () => {
    if (problem) return;
    rig = await startEngineRig({ plans: { store: STORE }, start: true, watch: true });
    const prefix = recoveryKeys(rig.prefix).bullPrefix;
    sched = new Queue(ENGINE_QUEUE, { connection: rig.conn, prefix });
    recovery = new Queue(RECOVERY_QUEUE, { connection: rig.conn, prefix });
  });

  afterAll(async () => {
    await sched?.close();
    await recovery?.close();
    await rig?.stop();
  });

  it('drills a plan on its schedule as one plan operation, judged by the policies as the scheduler', {
    timeout: 120_000,
  }, async (ctx) => {
    if (problem) return skipBecause(ctx, problem);
    await schedule('plan-drill', '      plans: [store]\n');
    await waitFor('the plan scheduler', async () =>
      (await schedulers()).join() === 'policy:plan-drill:store' ? true : undefined,
    );
    const job = await waitFor('a scheduled plan drill', async () => (await planJobs())[0], 60_000);
    expect(job.data as PlanJob).toMatchObject({
      plan: 'store',
      verb: 'drill',
      requestedBy: 'scheduler',
      groups: [{ apps: ['shop'] }, { apps: ['web'] }],
    });
    // While that run has not ended, the next firings start none: each says why.
    const busy = await notice(
      'a firing refused while the run waits',
      (x) => x.key === 'schedule:plan-drill:store',
    );
    expect(busy.summary).toBe(
      `Scheduled drill of plan store (policy plan-drill) did not start: its last run is still going: Drill of plan store (${job.id}): queued`,
    );
    // One job, the plan's: its apps run inside the plan's run.
    const jobs = await recovery.getJobs(['waiting', 'delayed', 'prioritized']);
    expect(jobs.map((j) => j.id)).toEqual([job.id]);
    const status = await rig.engine.submit(command('slack:USAM', 'status store'));
    expect(status.details?.at(-1)).toMatch(/^last run: Drill of plan store \(op-[a-z0-9]+\): /);
    await clear();
  });

  it("a scheduled plan drill's report goes out once: when it stops after a failure, not again when rolled back", {
    timeout: 120_000,
  }, async (ctx) => {
    if (problem) return skipBecause(ctx, problem);
    const events = recoveryKeys(rig.prefix).events;
    const meta = (opId: string, app: string, requestedBy: string, plan?: string[]) =>
      rig.conn.set(
        opMetaKey(rig.prefix, opId),
        JSON.stringify({ opId, app, verb: 'drill', requestedBy, ...(plan ? { plan } : {}) }),
      );
    // The plan job as the worker leaves it when web's drill failed in group 2 (no worker here: the
    // test plays its events). A run a person started gets no report.
    const failure = 'the health check of web failed: connection refused';
    const t0 = Date.now() - 90_000;
    const run: PlanRun = {
      phase: 'waiting-decision',
      startedAt: t0,
      at: { group: 1 },
      groups: [
        {
          apps: [{ app: 'shop', state: 'healthy', opId: 'op-shopdrill1', ops: ['op-shopdrill1'] }],
          steps: [],
          upAt: t0 + 40_000,
        },
        {
          apps: [
            {
              app: 'web',
              state: 'failed',
              opId: 'op-webdrill1',
              ops: ['op-webdrill1'],
              error: failure,
            },
          ],
          steps: [],
        },
      ],
      failure: { group: 1, app: 'web', error: failure },
      resumes: 0,
    };
    for (const [opId, who] of [
      ['op-schedplan1', 'scheduler'],
      ['op-handplan1', 'slack:USAM'],
    ] as const) {
      await meta(opId, 'store', who, ['shop', 'web']);
      const job: PlanJob = {
        opId,
        plan: 'store',
        verb: 'drill',
        requestedBy: who,
        groups: [
          { apps: ['shop'], wait: { kind: 'healthy' }, steps: [] },
          { apps: ['web'], wait: { kind: 'healthy' }, steps: [] },
        ],
        run,
      };
      await recovery.add('plan', job, { jobId: opId });
      const ev = { opId, app: 'store', job: 'plan' as const };
      // It stops after the failure (twice: a retry that failed again), then is rolled back.
      await emitEvent(rig.conn, events, { ...ev, type: 'step', step: 'plan-waiting-decision' });
      await emitEvent(rig.conn, events, { ...ev, type: 'step', step: 'plan-waiting-decision' });
      await emitEvent(rig.conn, events, {
        ...ev,
        type: 'finished',
        result: {
          opId,
          plan: 'store',
          mode: 'plan',
          verb: 'drill',
          outcome: 'rolled-back',
          run: { ...run, phase: 'rolled-back', endedAt: Date.now() },
          totalMs: 90_000,
        } as never,
      });
    }
    // Events are read in order: once the report of a later scheduled drill is out, every event
    // above has been handled.
    await meta('op-sentinel1', 'shop', 'scheduler');
    await emitEvent(rig.conn, events, {
      opId: 'op-sentinel1',
      app: 'shop',
      job: 'drill',
      type: 'finished',
      error: { code: 'provider_failed', message: 'no volume' },
    });
    await notice('the later report', (x) => x.key === 'report:op-sentinel1');
    const reports = (await readNotices(rig.conn, rig.prefix))
      .map((x) => x.notice)
      .filter((x) => x.kind === 'report.ready' && x.app === 'store');
    expect(reports.map((x) => x.key)).toEqual(['report:op-schedplan1']);
    const [r] = reports;
    expect(r?.summary).toMatch(
      /^Drill report of plan store: store, last 30 d; 1 plan drill\(s\), 0 passed; the last plan drill FAILED/,
    );
    expect(r?.severity).toBe('warning');
    expect(r?.targets).toEqual(['slack:CWEB', 'slack:CALERTS']);
    expect(r?.report?.plan?.groups).toEqual([['shop'], ['web']]);
    expect(r?.report?.planDrills).toEqual([
      {
        opId: 'op-schedplan1',
        at: expect.any(Number),
        ok: false,
        parts: [{ label: 'group 1 (shop)', ms: 40_000 }],
        skipped: [],
        error: failure,
      },
    ]);
    await clear();
  });

  it('a scheduled failover the policies deny for one app is refused and told to the apps and alerts', {
    timeout: 120_000,
  }, async (ctx) => {
    if (problem) return skipBecause(ctx, problem);
    await schedule('plan-failover', '      command: failover\n      plans: [store]\n');
    const n = await notice(
      'the refusal',
      (x) => x.kind === 'operation.failed' && x.key === 'schedule:plan-failover:store',
    );
    expect(n.summary).toMatch(
      /^Scheduled failover of plan store \(policy plan-failover\) did not start: Denied: .*in plan store/,
    );
    expect(n.targets).toEqual(['slack:CWEB', 'slack:CALERTS']);
    expect(await planJobs()).toEqual([]);
    await clear();
  });

  it('an unknown plan is refused on load with its line, and taken once its file exists', {
    timeout: 120_000,
  }, async (ctx) => {
    if (problem) return skipBecause(ctx, problem);
    await schedule('nightly', '      plans: [store, stores]\n');
    const refused = await waitFor('the refusal on load', () => {
      const p = rig.engine.policies().problems;
      return p.length ? p : undefined;
    });
    expect(refused.map((p) => `${p.line}: ${p.reason}`)).toEqual([
      '5: schedule.plans: no plan "stores" (did you mean store?); plans in plans/: store',
    ]);
    const denied = await rig.engine.submit(command('slack:USAM', 'drill shop'));
    expect(denied.ok).toBe(false); // the policy files have a problem: every action is denied
    const file = join(rig.h.home, 'plans', 'stores.yaml');
    await writeFile(file, 'groups:\n  - apps: [shop]\n');
    try {
      await waitFor('the policies taken with the new plan', async () =>
        (await schedulers()).join() === 'policy:nightly:store,policy:nightly:stores'
          ? true
          : undefined,
      );
      expect(rig.engine.policies().problems).toEqual([]);
      await clear();
    } finally {
      await unlink(file);
    }
  });

  it('a plan whose files fail lint: each firing is refused, naming the file and line', {
    timeout: 120_000,
  }, async (ctx) => {
    if (problem) return skipBecause(ctx, problem);
    const file = join(rig.h.home, 'plans', 'store.yaml');
    // The plan goes bad before the schedule exists: a firing in between would queue a run of the
    // good plan, and every later firing would then be refused as "its last run is still going".
    await writeFile(file, 'groups:\n  - apps: [shop]\n  - apps: [ghost]\n');
    try {
      await schedule('lint-drill', '      plans: [store]\n');
      await waitFor('the plan scheduler', async () =>
        (await schedulers()).join() === 'policy:lint-drill:store' ? true : undefined,
      );
      const n = await notice(
        'the refusal',
        (x) => x.key === 'schedule:lint-drill:store' && /problem/.test(x.summary),
      );
      expect(n.summary).toMatch(
        /^Scheduled drill of plan store \(policy lint-drill\) did not start: No app named "store", and the plans in .* have 1 problem\(s\)/,
      );
      expect(n.details?.[0]).toMatch(/store\.yaml:3: .*ghost/);
      expect(n.targets).toEqual(['slack:CALERTS']);
    } finally {
      await writeFile(file, STORE);
      await clear();
    }
  });
});
