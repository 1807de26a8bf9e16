/** `dr status PLAN`: the plan's apps group by group and its last run, worded as chat's `status PLAN`. */
import type { LoadedConfig } from '../../core/config.js';
import { DrError, errorMessage } from '../../core/errors.js';
import type { Plan } from '../../engine/plan.js';
import type { PlanLookup } from '../../engine/plan-named.js';
import type { AppStatus } from '../../replicator/transport/wire-types.js';
import { type CliContext, printJson } from '../context.js';
import { openRedis, redisPrefix } from '../recovery-connect.js';

/** The plan of the home by that name, as the engine looks it up (checked against dr.yaml's apps). */
export async function lookupPlanOf(config: LoadedConfig, name: string): Promise<PlanLookup> {
  const { planNamed } = await import('../../engine/plan-named.js');
  return planNamed(config.home, Object.keys(config.apps), name);
}

/** A name that is no app while the plan files fail lint: the engine's words, each file:line. */
export async function invalidPlansError(
  name: string,
  found: Extract<PlanLookup, { kind: 'invalid' }>,
): Promise<DrError> {
  const { invalidPlansReply } = await import('../../engine/submit-plan.js');
  const reply = invalidPlansReply(name, found);
  return new DrError(`${reply.summary}: ${(reply.details ?? []).join('; ')}`, {
    code: 'config_invalid',
    subject: found.dir,
    remedy: 'fix each file:line named (`dr plan lint` lists them all), or name an app of dr.yaml',
  });
}

/**
 * Prints the plan's status from `rows` (each app as `dr status APP --json` gives it) and its last
 * run from Redis, through the renderer chat uses. `dr status` needs no Redis: without it, the
 * apps are shown and the last run is said to be unknown, with the remedy.
 */
export async function printPlanStatus(
  ctx: CliContext,
  plan: Plan,
  rows: AppStatus[],
  json: boolean,
): Promise<number> {
  const { planStatusReply } = await import('../../engine/read-plan-status.js');
  const run = await readLastRun(ctx, plan.name);
  const reply = planStatusReply({ now: Date.now }, plan, new Map(rows.map((r) => [r.app, r])), run);
  if (json) printJson(reply.data);
  else {
    ctx.out(reply.summary);
    for (const line of reply.details ?? []) ctx.out(`  ${line}`);
  }
  return 0;
}

async function readLastRun(ctx: CliContext, plan: string) {
  let redis: Awaited<ReturnType<typeof openRedis>>;
  try {
    redis = await openRedis(ctx.env, 'lifeboat-dr-status', 3000);
  } catch (err) {
    return { unknown: errorMessage(err) }; // REDIS_URL unset or Redis away: said in the answer
  }
  const { lastPlanRun } = await import('../../engine/read-plan-status.js');
  const { RecoveryClient } = await import('../../replicator/jobs/recovery-client.js');
  const prefix = redisPrefix(ctx.env);
  const recovery = new RecoveryClient(redis, prefix);
  try {
    return { last: await lastPlanRun({ redis, prefix, recovery }, plan) };
  } finally {
    await recovery.close();
    redis.disconnect();
  }
}
