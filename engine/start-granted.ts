// What follows a granted or expired approval: the operation enqueued (rechecked first), or the card closed.
import type { ApprovalRecord } from './approval-store.js';
import type { Command, Decision, Reply, Surface } from './contract.js';
import { fired, judge } from './decide.js';
import type { EngineContext } from './engine-context.js';
import { resolveIdentity, SCHEDULER } from './identity.js';
import type { Plan } from './plan.js';
import { publishForApproval } from './publish-for-approval.js';
import {
  cancelAction,
  enqueueOperation,
  type OperationVerb,
  publicApproval,
} from './submit-operation.js';
import { enqueuePlanRun, judgePlan, lookupPlan } from './submit-plan.js';

/** `1 of 2`: an approval's count as cards and replies show it. */
export const progress = (a: ApprovalRecord) => `${a.approvals.length} of ${a.required}`;

/** Enqueues a granted approval's operation and records that it did (or why it could not). */
export async function startGranted(ctx: EngineContext, a: ApprovalRecord): Promise<Reply> {
  const found = a.plan ? await lookupPlan(ctx, a.app) : undefined;
  const plan = found && 'plan' in found ? found.plan : undefined;
  const refused = await recheck(ctx, a, plan);
  if (refused) return refused;
  const common = {
    verb: a.verb as OperationVerb,
    opId: a.opId,
    requestedBy: a.requestedBy,
    approvalId: a.id,
    ...(a.channel ? { channel: a.channel } : {}),
  };
  const queued = plan
    ? await enqueuePlanRun(ctx, {
        ...common,
        plan,
        ...(a.args.keepMs !== undefined ? { keepMs: a.args.keepMs } : {}),
      })
    : await enqueueOperation(ctx, { ...common, app: a.app, args: a.args });
  await ctx.approvals.markEnqueued(a.id, queued.ok ? 'queued' : `refused: ${queued.message}`);
  if (!queued.ok) {
    await publishForApproval(ctx, a, {
      kind: 'operation.failed',
      severity: 'critical',
      summary: `${a.verb} of ${a.app} was approved but could not start: ${queued.message}`,
      data: { opId: a.opId },
    });
    return {
      ok: false,
      summary: `Approved ${a.id}, but ${a.verb} of ${a.app} could not start: ${queued.message}`,
    };
  }
  return {
    ok: true,
    summary: `Approved ${a.id}: ${progress(a)}; ${a.verb} of ${a.app} queued as ${a.opId}`,
    data: { approval: publicApproval(a), opId: a.opId },
    actions: [cancelAction(a.opId, a.verb, a.app)],
  };
}

/** An approval's expiry job: marks it expired if it still waits, and tells its channels. */
export async function expireApproval(ctx: EngineContext, id: string): Promise<void> {
  const r = await ctx.approvals.expire(id, ctx.now());
  const a = r.approval;
  if (r.outcome !== 'expired-now' || !a) return;
  await ctx.audit.append('approval', { id, opId: a.opId, status: 'expired' });
  await publishForApproval(ctx, a, {
    kind: 'approval.expired',
    severity: 'warning',
    summary: `${id} (${a.verb} of ${a.app}) expired at ${a.expiresAt} with ${progress(a)} approvals; nothing was started`,
  });
}

/** Sweeps approvals granted but never enqueued (a process stopped between the two): enqueues them now. */
export async function sweepGranted(ctx: EngineContext): Promise<number> {
  let n = 0;
  for (const a of await ctx.approvals.recent(200)) {
    if (a.status !== 'granted' || a.enqueued) continue;
    // Several engines may start together: one of them takes each approval.
    const mine = await ctx.redis.set(`${ctx.prefix}approval:sweep:${a.id}`, '1', 'EX', 300, 'NX');
    if (mine !== 'OK') continue;
    await startGranted(ctx, a);
    n++;
  }
  return n;
}

/**
 * The policies may have changed since the operation was asked for (a freeze added, a grant
 * removed, a policy file broken): just before it is queued, the operation is judged again, as its
 * requester would be now. A deny, or an approval rule the presses so far no longer meet, refuses
 * it; the refusal is recorded on the approval, in the audit log and in the approval's thread.
 */
async function recheck(
  ctx: EngineContext,
  a: ApprovalRecord,
  plan: Plan | undefined,
): Promise<Reply | undefined> {
  const command: Command = {
    id: `${a.id}:recheck`,
    actor: a.requestedBy,
    surface: a.surface ?? surfaceOf(a.requestedBy),
    verb: a.verb,
    app: a.app,
    args: a.args,
    ...(a.channel ? { channel: a.channel } : {}),
    at: new Date(ctx.now()).toISOString(),
  };
  const who = resolveIdentity(ctx.config, a.requestedBy);
  const j = plan
    ? await judgePlan(ctx, command, who, plan)
    : a.plan
      ? {
          deny: {
            reason: `plan ${a.app} is no longer in plans/ (or its file has problems: \`dr plan lint\`)`,
            policy: '(plan)',
          },
        }
      : await judge(ctx, command, who);
  const ev = j.evaluation;
  let refusal: { reason: string; policy: string } | undefined = j.deny;
  if (!refusal && ev?.outcome === 'approval' && ev.approval) {
    const need = ev.approval;
    const counted = a.approvals.filter(
      (x) =>
        x.person !== a.requestedPerson &&
        (ctx.config.people[x.person]?.groups ?? []).some((g) => need.groups.includes(g)),
    ).length;
    if (counted < need.count)
      refusal = {
        reason: `it now needs ${need.count} approval(s) from ${need.groups.join(', ')} and has ${counted}; ask again`,
        policy: ev.policy?.name ?? '(approvals)',
      };
  }
  const policies = ev?.outcomes ?? [];
  await ctx.audit.append(
    'decision',
    {
      command: command.id,
      verb: a.verb,
      app: a.app,
      approval: a.id,
      opId: a.opId,
      recheck: true,
      outcome: refusal ? 'deny' : ev?.outcome,
      policy: refusal?.policy ?? ev?.policy?.name,
      ...(refusal ? { reason: refusal.reason } : {}),
      fired: fired(policies),
    },
    a.requestedBy,
  );
  if (!refusal) return undefined;
  const why = `the policies now refuse it: ${refusal.reason} (policy ${refusal.policy})`;
  await ctx.approvals.markEnqueued(a.id, `refused: ${why}`);
  await publishForApproval(ctx, a, {
    kind: 'operation.failed',
    severity: 'warning',
    summary: `${a.verb} of ${a.app} was approved (${a.id}) but not started: ${why}`,
    data: { opId: a.opId, approval: publicApproval(a) },
  });
  const decision: Decision = {
    outcome: 'deny',
    reason: refusal.reason,
    policy: refusal.policy,
    policies,
  };
  return {
    ok: false,
    summary: `Approved ${a.id}, but ${a.verb} of ${a.app} was not started: ${why}`,
    decision,
    data: { decision, approval: publicApproval(a) },
  };
}

/** The surface an actor's id names (`slack:U1` → slack); approvals made before it was recorded. */
function surfaceOf(actor: string): Surface {
  if (actor === SCHEDULER) return 'scheduler';
  const s = actor.slice(0, actor.indexOf(':'));
  return s === 'slack' || s === 'dingtalk' || s === 'console' ? s : 'cli';
}
