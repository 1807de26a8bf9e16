import type { Config } from '../core/config.js';
import type { Reply } from './contract.js';
import { type EngineContext, targetsFor } from './engine-context.js';
import { SCHEDULER } from './identity.js';
import { planApps } from './plan.js';
import { planNamed } from './plan-named.js';
import type { Policy } from './policy.js';
import { type PolicySet, rulesEngine } from './policy-set.js';
import { lastPlanRun } from './read-plan-status.js';

/** Job schedulers the engine owns are named `policy:<policy>:<app or plan>`. */
const ID_PREFIX = 'policy:';

export interface ScheduledCommand {
  policy: string;
  verb: 'drill' | 'failover' | 'failback';
  /** The app, or the plan when `plan` is set (a plan's name goes where an app's goes). */
  app: string;
  plan?: true;
}

/** The apps a schedule or alert policy selects, by its conditions over app facts. */
export async function appsSelected(
  policy: Policy,
  config: Pick<Config, 'apps'>,
  now: number,
): Promise<string[]> {
  const engine = rulesEngine([policy]);
  const out: string[] = [];
  for (const [app, a] of Object.entries(config.apps)) {
    const r = await engine.run({
      app,
      tier: a.tier,
      owners: a.owners,
      now,
      rpoObjectiveSeconds: a.rpoObjective / 1000,
    });
    if (r.results.length > 0) out.push(app);
  }
  return out;
}

/**
 * Makes the BullMQ job schedulers match the schedule policies: one per (policy, app) or (policy,
 * plan), created, changed and removed as the policy files change.
 */
export async function syncSchedules(ctx: EngineContext, set: PolicySet): Promise<string[]> {
  const wanted = new Map<string, { policy: Policy; app: string; plan?: true }>();
  for (const p of set.schedules) {
    if (p.mode !== 'enforce' || p.effect.kind !== 'schedule') continue;
    if (p.effect.plans) {
      for (const plan of p.effect.plans)
        wanted.set(`${ID_PREFIX}${p.name}:${plan}`, { policy: p, app: plan, plan: true });
      continue;
    }
    for (const app of await appsSelected(p, ctx.config, ctx.now()))
      wanted.set(`${ID_PREFIX}${p.name}:${app}`, { policy: p, app });
  }
  for (const [id, { policy, app, plan }] of wanted) {
    if (policy.effect.kind !== 'schedule') continue;
    const data: ScheduledCommand = {
      policy: policy.name,
      verb: policy.effect.verb,
      app,
      ...(plan ? { plan } : {}),
    };
    await ctx.queue.upsertJobScheduler(
      id,
      { pattern: policy.effect.cron, tz: policy.timezone },
      { name: 'scheduled-command', data, opts: { removeOnComplete: 100, removeOnFail: 100 } },
    );
  }
  for (const s of await ctx.queue.getJobSchedulers(0, -1)) {
    const id = s.key;
    if (id.startsWith(ID_PREFIX) && !wanted.has(id)) await ctx.queue.removeJobScheduler(id);
  }
  return [...wanted.keys()];
}

/** A scheduler's job: submits the command as the `scheduler` actor, through the same policies. */
export async function runScheduled(
  ctx: EngineContext,
  data: ScheduledCommand,
  jobId: string,
): Promise<void> {
  // A plan takes its lock only when a worker starts it: a firing while its last run goes on
  // would queue a run bound to fail, so it is refused here, as a busy app's is.
  const going = data.plan ? await runGoingOn(ctx, data.app) : undefined;
  const reply: Reply = going
    ? { ok: false, summary: `its last run is still going: ${going}` }
    : await submitScheduled(ctx, data, jobId);
  const what = `${data.plan ? 'plan ' : ''}${data.app}`;
  ctx.log.info(
    { policy: data.policy, app: data.app, ok: reply.ok, summary: reply.summary },
    'scheduled command submitted',
  );
  if (reply.ok) return;
  // Nobody waits on a scheduled command's reply: a refusal is told to the app's (a plan's: its
  // apps', when the plan loads) and the alert channels.
  const apps = data.plan ? await planAppsOf(ctx, data.app) : [data.app];
  await ctx.notices.publish({
    kind: 'operation.failed',
    key: `schedule:${data.policy}:${data.app}`,
    app: data.app,
    targets: [
      ...new Set([
        ...apps.flatMap((a) => targetsFor(ctx, a, undefined)),
        ...targetsFor(ctx, undefined, undefined, 'alerts'),
      ]),
    ],
    severity: 'warning',
    summary: `Scheduled ${data.verb} of ${what} (policy ${data.policy}) did not start: ${reply.summary}`,
    ...(reply.details?.length ? { details: reply.details } : {}),
    data: { policy: data.policy, reply },
  });
}

/** The apps of a plan of the home, or none when it does not load. */
async function planAppsOf(ctx: EngineContext, name: string): Promise<string[]> {
  const found = await planNamed(ctx.home, Object.keys(ctx.config.apps), name);
  return found.kind === 'found' ? planApps(found.plan) : [];
}

function submitScheduled(ctx: EngineContext, data: ScheduledCommand, jobId: string) {
  return ctx.submit({
    id: `scheduled:${jobId}`,
    actor: SCHEDULER,
    surface: 'scheduler',
    verb: data.verb,
    app: data.app,
    args: {},
    at: new Date(ctx.now()).toISOString(),
  });
}

/** The plan's last run when it has not ended: its summary; undefined when none goes on. */
async function runGoingOn(ctx: EngineContext, plan: string): Promise<string | undefined> {
  const last = await lastPlanRun(ctx, plan);
  return last && !ENDED.includes(last.phase) ? last.summary : undefined;
}

const ENDED = ['done', 'rolled-back', 'failed', 'expired'];
