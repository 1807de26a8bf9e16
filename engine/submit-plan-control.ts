/** continue | retry | skip | rollback OP: a person's word to a plan run that waits, judged and audited. */
import { type PlanControl, positionText } from '../replicator/jobs/plan-contract.js';
import { controlProblem, phaseText } from '../replicator/jobs/plan-run-state.js';
import { OP_ID } from '../replicator/jobs/recovery-contract.js';
import type { Command, Reply } from './contract.js';
import { denyReply, judge } from './decide.js';
import type { EngineContext } from './engine-context.js';
import type { Identity } from './identity.js';

const DONE: Record<PlanControl, string> = {
  continue: 'continued',
  retry: 'retried',
  skip: 'skipped',
  rollback: 'rolled back',
};

/**
 * Hands the control to the plan run once it is judged (under the policies, as the verb, for the
 * run's first app) and fits the run as it stands: `continue` at a manual step, `retry` and `skip`
 * after a failure, `rollback` while the run is not over. One control waits at a time, so a
 * second press of the same button is refused with who pressed first.
 */
export async function submitPlanControl(
  ctx: EngineContext,
  command: Command,
  who: Identity,
): Promise<Reply> {
  const action = command.verb as PlanControl;
  const opId = command.args.id ?? '';
  if (!OP_ID.test(opId))
    return {
      ok: false,
      private: true,
      summary: `"${opId}" is not an operation id; \`${action}\` takes the plan run's, like op-m3x1a2b3c4d5e6`,
    };
  const d = await ctx.recovery.planRun(opId);
  if (!d)
    return {
      ok: false,
      private: true,
      summary: `${opId} is not a plan run: \`${action}\` applies to the operation \`drill|failover|failback PLAN\` started`,
    };
  const j = await judge(ctx, { ...command, app: d.groups[0]?.apps[0] ?? d.plan }, who);
  if (j.deny) return { ...denyReply(j, j.evaluation?.outcomes ?? []), private: true };
  const person = who.person ?? command.actor;
  /** One audit entry for this control, refused or handed over. */
  const record = (fields: Record<string, unknown>) =>
    ctx.audit.append(
      'job',
      { opId, app: d.plan, verb: d.verb, plan: true, control: action, ...fields },
      command.actor,
    );
  const refuse = async (summary: string): Promise<Reply> => {
    await record({ state: `${action} refused`, error: summary });
    return { ok: false, private: true, summary, thread: `op:${opId}` };
  };
  const pending = await ctx.recovery.pendingSignal(opId);
  if (pending)
    return refuse(
      `${pending.by} already sent \`${pending.action}\` to ${d.verb} of plan ${d.plan} (${opId}); the run takes it now`,
    );
  const problem = controlProblem(d, d.run, action);
  if (problem || !d.run) return refuse(problem ?? 'the plan run has no record yet');
  const stored = await ctx.recovery.signalPlan(opId, {
    action,
    by: person,
    at: d.run.at,
    time: ctx.now(),
  });
  if (!stored) {
    const first =
      action === 'continue' ? await ctx.recovery.continuedBy(opId, d.run.at) : undefined;
    if (first)
      return refuse(
        `the manual step at ${positionText(d, d.run.at)} of ${d.verb} of plan ${d.plan} (${opId}) was already continued by ${first}`,
      );
    const other = await ctx.recovery.pendingSignal(opId);
    return refuse(
      `${other?.by ?? 'someone'} sent \`${other?.action ?? 'a control'}\` to ${opId} at the same moment; the run takes that one`,
    );
  }
  await record({ at: d.run.at, state: `${action} by ${person}` });
  return {
    ok: true,
    summary: `${person} ${DONE[action]} ${d.verb} of plan ${d.plan} (${opId}), which was ${phaseText(d, d.run)}`,
    thread: `op:${opId}`,
  };
}
