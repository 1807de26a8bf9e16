/** `drill|failover|failback PLAN`: the plan found, judged as one operation, and its run queued. */
import { errorMessage, isDrError } from '../core/errors.js';
import { formatDuration } from '../core/units.js';
import type { PlanJob } from '../replicator/jobs/plan-contract.js';
import { choosePlanPoints, type PointAt } from './choose-plan-points.js';
import type { Command, Reply } from './contract.js';
import { type Judgement, judge } from './decide.js';
import { type EngineContext, saveOpMeta, targetsFor } from './engine-context.js';
import { engineGateway } from './engine-gateway.js';
import { closest } from './fact-catalog.js';
import type { Identity } from './identity.js';
import { lastPlanRunKey } from './last-runs.js';
import { type Plan, planApps, walkGroups } from './plan.js';
import { planDecision } from './plan-decision.js';
import { type PlanLookup, planNamed } from './plan-named.js';

type PlanVerb = PlanJob['verb'];

/** As long as the recovery queue keeps a plan run's job (its record). */
const PLAN_RUN_KEPT_SECONDS = 30 * 86_400;

/**
 * The plan a command names where an app goes, or the reply that says why there is none: no app
 * and no plan of that name (with the nearest), or plan files with problems (each with its line).
 */
export async function lookupPlan(
  ctx: Pick<EngineContext, 'home' | 'config'>,
  name: string | undefined,
): Promise<{ plan: Plan } | { reply: Reply }> {
  const apps = Object.keys(ctx.config.apps);
  if (name === undefined)
    return {
      reply: {
        ok: false,
        summary: `Which app or plan? Apps: ${apps.join(', ') || '(none configured)'}`,
      },
    };
  const found = await planNamed(ctx.home, apps, name);
  if (found.kind === 'found') return { plan: found.plan };
  if (found.kind === 'invalid') return { reply: invalidPlansReply(name, found) };
  const near = closest(name, [...apps, ...found.names]);
  return {
    reply: {
      ok: false,
      summary: near
        ? `Unknown app or plan "${name}". Did you mean ${near}?`
        : `Unknown app or plan "${name}". Apps: ${apps.join(', ') || '(none configured yet)'}; plans: ${found.names.join(', ') || '(none: write one as plans/NAME.yaml, see docs/plans.md)'}`,
    },
  };
}

/** A name that is no app while the plan files do not load: each problem with its file and line. */
export function invalidPlansReply(
  name: string,
  found: Extract<PlanLookup, { kind: 'invalid' }>,
): Reply {
  return {
    ok: false,
    summary: `No app named "${name}", and the plans in ${found.dir} have ${found.problems.length} problem(s), so none is used until they are fixed (\`dr plan lint\`)`,
    details: found.problems.map((p) => `${p.file}:${p.line}: ${p.reason}`),
  };
}

/**
 * A plan is judged as one operation: each app under the policies as if asked alone, and the
 * strictest decision is the plan's (plan-decision.ts): a deny for any app denies it, else an
 * approval for any app asks for that approval once. Returns that app's judgement and its name.
 */
export async function judgePlan(
  ctx: EngineContext,
  command: Command,
  who: Identity,
  plan: Plan,
): Promise<Judgement & { decidedBy?: string }> {
  const perApp = await Promise.all(
    planApps(plan).map(async (app) => {
      const j = await judge(ctx, { ...command, app }, who);
      const ev = j.evaluation;
      return {
        app,
        tier: ctx.config.apps[app]?.tier ?? 'dev',
        j,
        explanation: {
          would: j.deny
            ? ('deny' as const)
            : ev?.outcome === 'approval'
              ? ('approval' as const)
              : ('allow' as const),
          reason: j.deny?.reason ?? '',
        },
      };
    }),
  );
  const d = planDecision(perApp);
  const chosen = perApp.find((p) => p.app === d?.app);
  if (!chosen) return { deny: { reason: `plan ${plan.name} has no apps`, policy: '(plan)' } };
  if (chosen.j.deny)
    return {
      ...chosen.j,
      deny: {
        ...chosen.j.deny,
        reason: `${chosen.j.deny.reason} (for ${chosen.app}, in plan ${plan.name})`,
      },
      decidedBy: chosen.app,
    };
  return { ...chosen.j, decidedBy: chosen.app };
}

/** The plan as the worker runs it: groups in walk order with the steps after each. */
export function planJobOf(
  plan: Plan,
  verb: PlanVerb,
  op: { opId: string; requestedBy: string; keepMs?: number },
): PlanJob {
  return {
    opId: op.opId,
    plan: plan.name,
    verb,
    requestedBy: op.requestedBy,
    groups: walkGroups(plan, verb).map(({ group, steps }) => ({
      apps: group.apps,
      wait: group.wait,
      steps: steps.map((s) =>
        s.kind === 'hook'
          ? { kind: 'hook' as const, command: s.command, timeoutMs: s.timeoutMs }
          : { kind: 'manual' as const, prompt: s.prompt },
      ),
    })),
    ...(verb === 'drill' && op.keepMs !== undefined ? { keepMs: op.keepMs } : {}),
  };
}

/**
 * Queues a plan run, its points chosen once, now: plan-consistent points read from the gateway
 * (every app at or before one instant, the skew reported), or each app its latest when its group
 * starts. A failback uses no point.
 */
export async function enqueuePlanRun(
  ctx: EngineContext,
  op: {
    verb: PlanVerb;
    plan: Plan;
    opId: string;
    requestedBy: string;
    keepMs?: number;
    channel?: string;
    approvalId?: string;
  },
): Promise<{ ok: true; pointsNote: string } | { ok: false; message: string }> {
  const { plan, verb } = op;
  try {
    const job = planJobOf(plan, verb, op);
    if (verb !== 'failback' && plan.points.kind === 'plan-consistent') {
      const gateway = engineGateway(ctx);
      let lists: (readonly [string, PointAt[]])[];
      try {
        lists = await Promise.all(
          planApps(plan).map(async (app) => {
            const pts = await gateway.points(app);
            return [app, pts.map((p) => ({ id: p.id, timeMs: Date.parse(p.time) }))] as const;
          }),
        );
      } finally {
        gateway.close();
      }
      const chosen = choosePlanPoints(plan.points, Object.fromEntries(lists));
      if (!chosen.ok)
        return {
          ok: false,
          message: `no plan-consistent points: ${chosen.reason}; ${chosen.remedy}`,
        };
      job.points = Object.fromEntries(Object.entries(chosen.chosen).map(([a, p]) => [a, p.id]));
      job.pointsNote = `plan-consistent: ${Object.entries(chosen.chosen)
        .map(([a, p]) => `${a} #${p.id}`)
        .join(
          ', ',
        )}${chosen.instantMs !== undefined ? `, all at or before ${new Date(chosen.instantMs).toISOString()}` : ''}, skew ${formatDuration(chosen.skewMs)}`;
    } else
      job.pointsNote =
        verb === 'failback'
          ? 'failback: no point (the DR copies go home)'
          : 'latest: each app its newest point when its group starts';
    await saveOpMeta(ctx, {
      opId: op.opId,
      app: plan.name,
      verb,
      requestedBy: op.requestedBy,
      plan: planApps(plan),
      ...(op.channel ? { channel: op.channel } : {}),
      ...(op.approvalId ? { approvalId: op.approvalId } : {}),
    });
    await ctx.recovery.enqueuePlan(job);
    await ctx.redis.set(
      lastPlanRunKey(ctx.prefix, plan.name),
      op.opId,
      'EX',
      PLAN_RUN_KEPT_SECONDS,
    );
    await ctx.audit.append(
      'job',
      {
        opId: op.opId,
        plan: plan.name,
        job: 'plan',
        verb,
        state: 'queued',
        points: job.pointsNote,
      },
      op.requestedBy,
    );
    return { ok: true, pointsNote: job.pointsNote };
  } catch (err) {
    const message = isDrError(err)
      ? err.message
      : `could not queue the ${verb} of plan ${plan.name}: ${errorMessage(err)}`;
    await ctx.audit.append(
      'job',
      {
        opId: op.opId,
        app: plan.name,
        plan: true,
        job: 'plan',
        verb,
        state: 'refused',
        error: message,
      },
      op.requestedBy,
    );
    return { ok: false, message };
  }
}

/** Where a plan's notices go: the asking channel and the channels of each of its apps. */
export function planTargets(
  ctx: EngineContext,
  apps: readonly string[],
  channel?: string,
): string[] {
  return [
    ...new Set([
      ...(channel ? [channel] : []),
      ...apps.flatMap((a) => targetsFor(ctx, a, undefined)),
    ]),
  ];
}
