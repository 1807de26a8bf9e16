import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../../engine/create-engine.js';
import { replicationKey } from '../../replicator/gateway/state-publisher.js';
import type { PlanJob } from '../../replicator/jobs/plan-contract.js';
import { RECOVERY_QUEUE, recoveryKeys } from '../../replicator/jobs/recovery-contract.js';
import { command } from '../helpers/engine-home.js';
import { type EngineRig, startEngineRig } from '../helpers/engine-rig.js';
import { redisUnavailable } from '../helpers/redis-server.js';
import { skipBecause } from '../helpers/skip.js';

/**
 * A plan through the policy engine: judged once (the strictest app decides), one approval for the
 * whole plan, and on the last approval one plan job with the plan resolved in walk order.
 */
const problem = redisUnavailable();

describe('engine: a plan as one operation', () => {
  let rig: EngineRig;
  let queue: Queue;
  let engine: Engine;

  beforeAll(async () => {
    if (problem) return;
    // shop is dev, web is prod: the plan's failover takes web's two approvals, asked once.
    rig = await startEngineRig({
      plans: {
        store:
          'groups:\n  - apps: [shop]\n    then:\n      - manual: cache warm\n  - apps: [web]\n',
      },
    });
    engine = rig.engine;
    queue = new Queue(RECOVERY_QUEUE, {
      connection: rig.conn,
      prefix: recoveryKeys(rig.prefix).bullPrefix,
    });
  });

  afterAll(async () => {
    await queue?.close();
    await rig?.stop();
  });

  it('status PLAN: its apps group by group as `status APP` shows them, and its last run', async (ctx) => {
    if (problem) return skipBecause(ctx, problem);
    const point = { id: 7, label: 'consistent', time: new Date(Date.now() - 2_000).toISOString() };
    await rig.conn.hset(
      replicationKey(rig.prefix),
      'shop',
      JSON.stringify({
        app: 'shop',
        phase: 'continuous',
        lastPoint: point,
        lastConsistentPoint: point,
        backlogBytes: 0,
      }),
    );
    const app = await engine.submit(command('slack:USAM', 'status shop'));
    const shopLine = app.details?.[0] ?? '';
    expect(shopLine).toMatch(/^shop: continuous, RPO \d+\.\d s, last point #7 consistent/);

    // No run yet of store: the answer says so.
    const before = await engine.submit(command('slack:USAM', 'status store'));
    expect(before.ok).toBe(true);
    expect(before.summary).toBe(
      'Status of plan store: 2 group(s), 2 app(s), 1 with no replication state',
    );
    expect(before.details?.[0]).toMatch(/^1\. shop: continuous, RPO \d+\.\d s, last point #7/);
    expect(before.details?.[1]).toMatch(/^2\. web: no replication state published/);
    expect(before.details?.at(-1)).toBe('last run: none yet');

    // A run queued is the last run; its record gone, the answer says that too.
    const queued = await engine.submit(command('slack:USAM', 'failback store --emergency'));
    const opId = /op-[a-z0-9]+/.exec(queued.summary)?.[0] ?? '';
    expect(opId).not.toBe('');
    const after = await engine.submit(command('slack:USAM', 'status store'));
    expect(after.details?.at(-1)).toBe(`last run: Failback of plan store (${opId}): queued`);
    // The data is the object `dr status PLAN --json` prints (an app without state: status null).
    expect(after.data).toEqual({
      plan: 'store',
      description: null,
      groups: [
        { apps: [expect.objectContaining({ app: 'shop', phase: 'continuous' })] },
        { apps: [{ app: 'web', status: null }] },
      ],
      lastRun: {
        opId,
        verb: 'failback',
        phase: 'queued',
        summary: `Failback of plan store (${opId}): queued`,
      },
    });
    for (const j of await queue.getJobs(['waiting', 'delayed', 'prioritized'])) await j.remove();
    const gone = await engine.submit(command('slack:USAM', 'status store'));
    expect(gone.details?.at(-1)).toBe(
      `last run: ${opId} (its record is gone: plan runs are kept 30 days)`,
    );
  });

  it('asks once for the strictest app, and queues one plan job when approved', async (ctx) => {
    if (problem) return skipBecause(ctx, problem);
    const asked = await engine.submit(command('slack:USAM', 'failover store'));
    expect(asked.ok).toBe(true);
    expect(asked.decision?.outcome).toBe('approval');
    expect(asked.summary).toContain('Failover of plan store needs 2 approval(s) from sre-oncall');
    const id = asked.decision?.outcome === 'approval' ? asked.decision.approval.id : '';
    expect((await engine.submit(command('slack:UTOM', `approve ${id}`))).ok).toBe(true);
    expect(await queue.getJobs(['waiting', 'delayed'])).toEqual([]);
    const granted = await engine.submit(command('slack:UUMA', `approve ${id}`));
    expect(granted.summary).toContain('failover of store queued as op-');
    const jobs = await queue.getJobs(['waiting', 'delayed', 'prioritized']);
    expect(jobs.map((j) => j.name)).toEqual(['plan']);
    const d = jobs[0]?.data as PlanJob;
    expect(d).toMatchObject({
      plan: 'store',
      verb: 'failover',
      requestedBy: 'slack:USAM',
      groups: [
        {
          apps: ['shop'],
          wait: { kind: 'healthy' },
          steps: [{ kind: 'manual', prompt: 'cache warm' }],
        },
        { apps: ['web'], wait: { kind: 'healthy' }, steps: [] },
      ],
    });
    await jobs[0]?.remove();
  });

  it('walks the groups back to front for a failback, with the steps between the same groups', async (ctx) => {
    if (problem) return skipBecause(ctx, problem);
    const r = await engine.submit(command('slack:USAM', 'failback store --emergency'));
    expect(r.decision?.outcome).toBe('allow');
    const jobs = await queue.getJobs(['waiting', 'delayed', 'prioritized']);
    const d = jobs.find((j) => j.name === 'plan')?.data as PlanJob;
    expect(d.groups.map((g) => [g.apps, g.steps.map((s) => s.kind)])).toEqual([
      [['web'], ['manual']],
      [['shop'], []],
    ]);
    for (const j of jobs) await j.remove();
  });

  it('denies the plan when the policies deny any app, naming the app; refuses --point', async (ctx) => {
    if (problem) return skipBecause(ctx, problem);
    // alice owns web and may drill it, but no policy lets her drill shop.
    const denied = await engine.submit(command('slack:UALICE', 'drill store'));
    expect(denied.ok).toBe(false);
    expect(denied.summary).toMatch(
      /^Denied: no policy lets alice drill shop \(for shop, in plan store\)/,
    );
    const dry = await engine.submit(command('slack:USAM', 'drill store --dry-run'));
    expect(dry.summary).toContain('Dry run: drill of plan store would be allowed');
    const point = await engine.submit(command('slack:USAM', 'drill store', { args: { point: 3 } }));
    expect(point.ok).toBe(false);
    expect(point.summary).toContain('--point does not apply to plan store');
    expect(await queue.getJobs(['waiting', 'delayed', 'prioritized'])).toEqual([]);
  });

  it('says what to do for an unknown plan, and for controls that do not fit', async (ctx) => {
    if (problem) return skipBecause(ctx, problem);
    const unknown = await engine.submit(command('slack:USAM', 'failover stor'));
    expect(unknown.summary).toBe('Unknown app or plan "stor". Did you mean store?');
    const notOp = await engine.submit(command('slack:USAM', 'retry', { args: { id: 'A-1' } }));
    expect(notOp.summary).toContain('"A-1" is not an operation id');
    const none = await engine.submit(
      command('slack:USAM', 'skip', { args: { id: 'op-nosuchrun1' } }),
    );
    expect(none.summary).toContain('op-nosuchrun1 is not a plan run');
  });

  it('status of a name that is neither: the nearest name, else the apps and the plans; bad plan files named', async (ctx) => {
    if (problem) return skipBecause(ctx, problem);
    const near = await engine.submit(command('slack:USAM', 'status stor'));
    expect(near.ok).toBe(false);
    expect(near.summary).toBe('Unknown app or plan "stor". Did you mean store?');
    const far = await engine.submit(command('slack:USAM', 'status zzzzzzzz'));
    expect(far.summary).toBe('Unknown app or plan "zzzzzzzz". Apps: web, shop; plans: store');
    const bad = join(rig.h.home, 'plans', 'odd.yaml');
    await writeFile(bad, 'groups:\n  - apps: [nosuchapp]\n');
    try {
      const refused = await engine.submit(command('slack:USAM', 'status store'));
      expect(refused.ok).toBe(false);
      expect(refused.summary).toContain('have 1 problem(s)');
      expect(refused.details?.[0]).toMatch(/odd\.yaml:2: .*nosuchapp/);
    } finally {
      await rm(bad);
    }
  });
});
