/** `dr plan status|continue|retry|skip|rollback OP`: a plan run's record, and a person's word to it. */
import type { Command } from 'commander';
import { checkName } from '../../core/names.js';
import type { Enqueued, RecoveryClient } from '../../replicator/jobs/recovery-client.js';
import { contextOf, type ExitState, printJson, runAction, usageError } from '../context.js';
import { openRedis, redisPrefix } from '../recovery-connect.js';
import { submitAsAdmin } from '../submit-as-admin.js';

const CONTROLS = {
  continue: 'go on after the manual step the run waits at',
  retry: 'run the failed app (or hook) of a stopped run again',
  skip: 'go on without the failed app (or hook) of a stopped run',
  rollback: 'stop the run and remove everything it started, last group first',
} as const;

/** Follows a plan run to its end, saying when it waits for a person; exit 0 when it is done. */
export async function waitForPlan(
  client: RecoveryClient,
  e: Enqueued,
  json: boolean,
  out: (line: string) => void,
): Promise<number> {
  const { planSummary, planLines } = await import('../../engine/plan-card.js');
  let last = '';
  for await (const ev of client.follow(e)) {
    if (json || ev.type === 'finished') continue;
    const d = await client.planRun(e.opId);
    if (!d) continue;
    const summary = planSummary(d);
    if (summary !== last) out(`  ${summary}`);
    last = summary;
    if (ev.step === 'plan-waiting-manual') out(`  continue with \`dr plan continue ${e.opId}\``);
    if (ev.step === 'plan-waiting-decision')
      out(`  decide with \`dr plan retry|skip|rollback ${e.opId}\``);
  }
  const d = await client.planRun(e.opId);
  if (json) {
    printJson({ opId: e.opId, plan: e.app, ok: d?.run?.phase === 'done', run: d?.run ?? null });
    return d?.run?.phase === 'done' ? 0 : 1;
  }
  if (!d?.run) {
    process.stderr.write(`dr: plan run ${e.opId} ended without a record (see \`dr history\`)\n`);
    return 1;
  }
  out(planSummary(d));
  for (const line of planLines(d)) out(`  ${line}`);
  return d.run.phase === 'done' ? 0 : 1;
}

/** The plan-run sub-commands of `dr plan`. */
export function registerPlanRun(plan: Command, exit: ExitState): void {
  plan
    .command('status')
    .description(
      "a plan run's record: every group, app and step with its state, the points, the fences",
    )
    .argument('<op>', 'the op id `dr failover PLAN` printed')
    .option('--json', 'print JSON')
    .action(async (opId: string, opts: { json?: boolean }, c: Command) =>
      runAction(exit, opts.json, async () => {
        checkName('operation', opId, 'OP');
        const ctx = contextOf(c);
        const redis = await openRedis(ctx.env, 'lifeboat-dr-plan-status');
        const { RecoveryClient } = await import('../../replicator/jobs/recovery-client.js');
        const client = new RecoveryClient(redis, redisPrefix(ctx.env));
        try {
          const d = await client.planRun(opId);
          if (!d)
            throw usageError(
              `${opId} is not a plan run`,
              'pass the op id `dr failover PLAN` printed',
            );
          if (opts.json) printJson(d);
          else {
            const { planSummary, planLines } = await import('../../engine/plan-card.js');
            ctx.out(planSummary(d));
            for (const line of planLines(d)) ctx.out(`  ${line}`);
          }
          return 0;
        } finally {
          await client.close();
          redis.disconnect();
        }
      }),
    );

  for (const [verb, help] of Object.entries(CONTROLS) as [keyof typeof CONTROLS, string][]) {
    plan
      .command(verb)
      .description(`${help} (through the policies, as dr.yaml's admin, audited)`)
      .argument('<op>', 'the plan run')
      .option('--json', 'print JSON')
      .action(async (opId: string, opts: { json?: boolean }, c: Command) =>
        runAction(exit, opts.json, async () => {
          checkName('operation', opId, 'OP');
          const ctx = contextOf(c);
          const reply = await submitAsAdmin(ctx, await ctx.config(), { verb, args: { id: opId } });
          if (opts.json) printJson(reply);
          else if (reply.ok) ctx.out(reply.summary);
          else process.stderr.write(`dr: ${reply.summary}\n`);
          return reply.ok ? 0 : 1;
        }),
      );
  }
}
