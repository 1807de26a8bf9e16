import type { Config } from '../core/config.js';
import { type EngineContext, targetsFor } from './engine-context.js';
import { SCHEDULER } from './identity.js';
import type { Policy } from './policy.js';
import { type PolicySet, rulesEngine } from './policy-set.js';

/** Job schedulers the engine owns are named `policy:<policy>:<app>`. */
const ID_PREFIX = 'policy:';

export interface ScheduledCommand {
  policy: string;
  verb: 'drill' | 'failover' | 'failback';
  app: string;
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
 * Makes the BullMQ job schedulers match the schedule policies: one per (policy, app), created,
 * changed and removed as the policy files change.
 */
export async function syncSchedules(ctx: EngineContext, set: PolicySet): Promise<string[]> {
  const wanted = new Map<string, { policy: Policy; app: string }>();
  for (const p of set.schedules) {
    if (p.mode !== 'enforce') continue;
    for (const app of await appsSelected(p, ctx.config, ctx.now()))
      wanted.set(`${ID_PREFIX}${p.name}:${app}`, { policy: p, app });
  }
  for (const [id, { policy, app }] of wanted) {
    if (policy.effect.kind !== 'schedule') continue;
    const data: ScheduledCommand = { policy: policy.name, verb: policy.effect.verb, app };
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
  const reply = await ctx.submit({
    id: `scheduled:${jobId}`,
    actor: SCHEDULER,
    surface: 'scheduler',
    verb: data.verb,
    app: data.app,
    args: {},
    at: new Date(ctx.now()).toISOString(),
  });
  ctx.log.info(
    { policy: data.policy, app: data.app, ok: reply.ok, summary: reply.summary },
    'scheduled command submitted',
  );
  if (reply.ok) return;
  // Nobody waits on a scheduled command's reply: a refusal is told to the app's and the alert channels.
  await ctx.notices.publish({
    kind: 'operation.failed',
    key: `schedule:${data.policy}:${data.app}`,
    app: data.app,
    targets: targetsFor(ctx, data.app, undefined, 'alerts'),
    severity: 'warning',
    summary: `Scheduled ${data.verb} of ${data.app} (policy ${data.policy}) did not start: ${reply.summary}`,
    data: { policy: data.policy, reply },
  });
}
