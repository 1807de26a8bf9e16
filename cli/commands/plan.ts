/** `dr plan lint|show|explain`: check the home's recovery plans and say what one would do. */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { LoadedConfig } from '../../core/config.js';
import { DrError, errorMessage, isDrError } from '../../core/errors.js';
import { formatDuration } from '../../core/units.js';
import type { AppState } from '../../engine/command-facts.js';
import type { Plan } from '../../engine/plan.js';
import type { PlanVerb } from '../../engine/plan-outline.js';
import { gatewayClient } from '../connect.js';
import { contextOf, type ExitState, printJson, runAction, usageError } from '../context.js';
import { registerPlanRun } from './plan-run.js';

const VERBS: readonly PlanVerb[] = ['drill', 'failover', 'failback'];

/** The plan directory: DIR when given, else plans/ in the home. */
function planDir(dir: string | undefined, config: LoadedConfig | undefined): string {
  if (dir) return resolve(dir);
  if (!config)
    throw usageError(
      'no plan directory given and no Lifeboat home found',
      'pass DIR, or run it with --home',
    );
  return resolve(config.home, 'plans');
}

async function maybeConfig(read: () => Promise<LoadedConfig>): Promise<LoadedConfig | undefined> {
  try {
    return await read();
  } catch (err) {
    if (isDrError(err, 'home_missing')) return undefined;
    throw err;
  }
}

async function loadPlans(dir: string, config: LoadedConfig | undefined) {
  const { loadPlanDir } = await import('../../engine/load-plan-dir.js');
  return loadPlanDir(dir, config ? { knownApps: new Set(Object.keys(config.apps)) } : {});
}

function printProblems(problems: { file: string; line: number; reason: string }[]): void {
  for (const p of problems) process.stderr.write(`${p.file}:${p.line}: ${p.reason}\n`);
}

/** The named plan of the home, or a clear error naming the plans there are. */
async function findPlan(config: LoadedConfig, name: string): Promise<Plan> {
  const dir = planDir(undefined, config);
  const r = await loadPlans(dir, config);
  if (!r.set) {
    printProblems(r.problems);
    throw new DrError(`the plans in ${dir} have ${r.problems.length} problem(s)`, {
      code: 'plan_invalid',
      subject: dir,
      remedy: 'fix them (dr plan lint lists each with its line)',
    });
  }
  const plan = r.set.plans.find((p) => p.name === name);
  if (!plan) {
    const { closest } = await import('../../engine/fact-catalog.js');
    const names = r.set.plans.map((p) => p.name);
    const near = closest(name, names);
    throw new DrError(`no plan named ${JSON.stringify(name)} in ${dir}`, {
      code: 'plan_unknown',
      subject: name,
      remedy: near
        ? `did you mean ${near}?`
        : `plans here: ${names.join(', ') || '(none; write one as plans/NAME.yaml, see docs/plans.md)'}`,
    });
  }
  return plan;
}

/** The plan as lines: its point policy and its groups with their waits and steps. */
function planLines(plan: Plan): string[] {
  const lines = [
    `plan ${plan.name}${plan.description ? ` — ${plan.description}` : ''}  (${plan.file})`,
    `points: ${plan.points.kind}${plan.points.kind === 'plan-consistent' && plan.points.maxSkewMs !== undefined ? ` (maxSkew ${formatDuration(plan.points.maxSkewMs)})` : ''}`,
    `order: ${plan.groups.map((g) => `[${g.apps.join(', ')}]`).join(' → ')}`,
  ];
  plan.groups.forEach((g, i) => {
    lines.push(
      `group ${i + 1}: ${g.apps.join(', ')}  wait: ${g.wait.kind === 'healthy' ? 'healthy' : formatDuration(g.wait.ms)}`,
    );
    for (const s of g.steps)
      lines.push(s.kind === 'hook' ? `  then hook: ${s.command}` : `  then manual: ${s.prompt}`);
  });
  return lines;
}

export function registerPlan(program: Command, exit: ExitState): void {
  const plan = program
    .command('plan')
    .description(
      'check and explain the recovery plans in plans/ of the home, and steer their runs (see docs/plans.md)',
    );
  registerPlanRun(plan, exit);

  plan
    .command('lint')
    .description(
      'validate the plan files: every problem with file, line and reason (exit 1 on any)',
    )
    .argument('[dir]', 'plan directory (default: plans/ in the home)')
    .option('--json', 'print JSON')
    .action(async (dir: string | undefined, opts: { json?: boolean }, c: Command) =>
      runAction(exit, opts.json, async () => {
        const ctx = contextOf(c);
        const config = await maybeConfig(ctx.config);
        const target = planDir(dir, config);
        const r = await loadPlans(target, config);
        if (opts.json)
          printJson({
            dir: target,
            ok: r.problems.length === 0,
            plans: r.set?.plans.map((p) => p.name) ?? [],
            appsChecked: config !== undefined,
            problems: r.problems,
          });
        else if (r.problems.length) printProblems(r.problems);
        else {
          ctx.out(`ok: ${r.set?.plans.length ?? 0} plan(s) in ${target}`);
          if (!config) ctx.out('  (no home found: app names were not checked against dr.yaml)');
        }
        return r.problems.length ? 1 : 0;
      }),
    );

  plan
    .command('show')
    .description(
      'a plan: its point policy, its groups in order, their waits, hooks and manual steps',
    )
    .argument('<plan>', 'the plan (the name of its file in plans/)')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: { json?: boolean }, c: Command) =>
      runAction(exit, opts.json, async () => {
        const ctx = contextOf(c);
        const p = await findPlan(await ctx.config(), name);
        if (opts.json) printJson(p);
        else for (const line of planLines(p)) ctx.out(line);
        return 0;
      }),
    );

  plan
    .command('explain')
    .description(
      'what `dr VERB PLAN` would do: the decision for the plan (its strictest app decides), the points each app would get (with their skew), and every step in order',
    )
    .argument('<plan>', 'the plan')
    .option('--verb <verb>', 'drill, failover or failback', 'failover')
    .option('--as <person>', 'judge it as this person under people: (default: the admin)')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: { verb: string; as?: string; json?: boolean }, c: Command) =>
      runAction(exit, opts.json, async () => {
        if (!VERBS.includes(opts.verb as PlanVerb))
          throw usageError(
            `--verb ${JSON.stringify(opts.verb)} is not a plan operation`,
            'pass --verb drill, failover or failback',
          );
        const verb = opts.verb as PlanVerb;
        const ctx = contextOf(c);
        const config = await ctx.config();
        const p = await findPlan(config, name);
        const { planApps } = await import('../../engine/plan.js');
        const { planOutline } = await import('../../engine/plan-outline.js');
        const apps = planApps(p);
        const decision = await decide(config, ctx.env, apps, verb, opts.as);
        const points = verb === 'failback' ? undefined : await choosePoints(config, p, apps);
        const steps = planOutline(p, verb, config.apps);
        if (opts.json) {
          printJson({ plan: p.name, verb, decision, points, steps });
          return 0;
        }
        ctx.out(`${verb} ${p.name}: ${p.groups.map((g) => `[${g.apps.join(', ')}]`).join(' → ')}`);
        ctx.out(
          decision.ok
            ? `decision: ${decision.would.toUpperCase()} — ${decision.reason} (decided by ${decision.app}, tier ${decision.tier}${decision.policy ? `, policy ${decision.policy}` : ''})`
            : `decision: not known (${decision.reason})`,
        );
        if (points) {
          if (!points.ok) ctx.out(`points: none (${points.reason}; ${points.remedy})`);
          else {
            ctx.out(
              `points (${p.points.kind}${points.instantMs !== undefined ? `, all at or before ${new Date(points.instantMs).toISOString()}` : ''}, skew ${formatDuration(points.skewMs)}):`,
            );
            for (const [app, at] of Object.entries(points.chosen))
              ctx.out(`  ${app}: point ${at.id} at ${new Date(at.timeMs).toISOString()}`);
          }
        }
        for (const s of steps) ctx.out(s);
        return 0;
      }),
    );
}

/** The plan's decision from the policies, or why it cannot be known here. */
async function decide(
  config: LoadedConfig,
  env: NodeJS.ProcessEnv,
  apps: string[],
  verb: PlanVerb,
  as: string | undefined,
) {
  const person = as ?? config.admin;
  const who = person ? config.people[person] : undefined;
  if (!person || !who)
    return {
      ok: false as const,
      reason: person ? `no person ${person} under people:` : 'no --as and no admin in dr.yaml',
    };
  const { loadPolicyDir } = await import('../../engine/policy-set.js');
  const { policyParseOptions } = await import('../../engine/policy-parse-options.js');
  const { explainCommand } = await import('../../engine/explain-command.js');
  const { planDecision } = await import('../../engine/plan-decision.js');
  const { isAbsolute } = await import('node:path');
  const dir = isAbsolute(config.policies) ? config.policies : resolve(config.home, config.policies);
  const loaded = await loadPolicyDir(dir, await policyParseOptions(config, config.home));
  if (!loaded.set)
    return { ok: false as const, reason: `the policies have problems (dr policy lint)` };
  const set = loaded.set;
  const now = Date.now();
  const states = await readStates(env, apps);
  const perApp = await Promise.all(
    apps.map(async (app) => ({
      app,
      tier: config.apps[app]?.tier ?? 'dev',
      explanation: await explainCommand(
        set,
        config,
        { verb, app, args: {} },
        { actor: `cli:${person}`, person, groups: who.groups, known: true },
        states[app] ?? { operationsInProgress: 0 },
        now,
        'cli',
      ),
    })),
  );
  const d = planDecision(perApp);
  return d ? { ok: true as const, ...d } : { ok: false as const, reason: 'the plan has no apps' };
}

/** The points the plan's point policy would choose now, from the gateway; why not when it cannot. */
async function choosePoints(config: LoadedConfig, plan: Plan, apps: string[]) {
  const { choosePlanPoints } = await import('../../engine/choose-plan-points.js');
  let client: ReturnType<typeof gatewayClient> | undefined;
  try {
    client = gatewayClient(config, 5000);
    const c = client;
    const lists = await Promise.all(apps.map(async (app) => [app, await c.points(app)] as const));
    return choosePlanPoints(
      plan.points,
      Object.fromEntries(
        lists.map(([app, pts]) => [
          app,
          pts.map((pt) => ({ id: pt.id, timeMs: Date.parse(pt.time) })),
        ]),
      ),
    );
  } catch (err) {
    return {
      ok: false as const,
      reason: `the gateway did not list the points: ${errorMessage(err)}`,
      remedy: 'start the gateway (dr up) or set DR_GATEWAY',
    };
  } finally {
    client?.close();
  }
}

/**
 * Each app's state (RPO, last drill, operations running) from Redis when REDIS_URL is set (or a
 * `dr up` of this home runs); without it those facts are unknown, as in `dr policy explain`.
 */
async function readStates(env: NodeJS.ProcessEnv, apps: string[]) {
  const { redisUrlFrom } = await import('../../core/redis.js');
  const out: Record<string, AppState> = {};
  if (!redisUrlFrom(env)) return out;
  const { openRedis, redisPrefix } = await import('../recovery-connect.js');
  const { appState } = await import('../../engine/decide.js');
  const redis = await openRedis(env, 'lifeboat-dr-plan', 3000);
  try {
    for (const app of apps)
      out[app] = await appState({ redis, prefix: redisPrefix(env), now: Date.now }, app);
  } finally {
    redis.disconnect();
  }
  return out;
}
