import { errorMessage, isDrError } from '../core/errors.js';
import { formatDuration } from '../core/units.js';
import { newOpId } from '../replicator/jobs/recovery-client.js';
import type { ApprovalRecord } from './approval-store.js';
import type { Action, ApprovalState, Command, Decision, Reply } from './contract.js';
import { denyReply, fired, judge } from './decide.js';
import { type EngineContext, saveOpMeta, targetsFor } from './engine-context.js';
import { type CardFacts, gatherCardFacts } from './gather-card-facts.js';
import type { Identity } from './identity.js';
import { type Plan, planApps } from './plan.js';
import { enqueuePlanRun, judgePlan, lookupPlan, planTargets } from './submit-plan.js';

export type OperationVerb = 'drill' | 'failover' | 'failback';

const TITLE: Record<OperationVerb, string> = {
  drill: 'Drill',
  failover: 'Failover',
  failback: 'Failback',
};

/** drill, failover, failback: judge, then enqueue, ask for approvals, refuse, or explain (dry run). */
export async function submitOperation(
  ctx: EngineContext,
  command: Command,
  who: Identity,
): Promise<Reply> {
  const verb = command.verb as OperationVerb;
  // A plan's name goes where an app's name goes: the plan is judged and run as one operation.
  let plan: Plan | undefined;
  if (command.app === undefined || !ctx.config.apps[command.app]) {
    const found = await lookupPlan(ctx, command.app);
    if ('reply' in found) return found.reply;
    plan = found.plan;
    if (command.args.point !== undefined)
      return {
        ok: false,
        private: true,
        summary: `--point does not apply to plan ${plan.name}: its points come from the plan's \`points:\` (${plan.points.kind}); see \`dr plan explain ${plan.name}\``,
      };
  }
  const app = command.app as string;
  const what = plan ? `plan ${app}` : app;
  const j = plan ? await judgePlan(ctx, command, who, plan) : await judge(ctx, command, who);
  const ev = j.evaluation;
  const policies = ev?.outcomes ?? [];
  const warnings = ev?.warnings ?? [];
  await ctx.audit.append(
    'decision',
    {
      command: command.id,
      verb,
      app,
      outcome: j.deny ? 'deny' : ev?.outcome,
      policy: j.deny?.policy ?? ev?.policy?.name,
      fired: fired(policies),
      dryRun: command.args.dryRun === true,
      ...(command.args.reason ? { reason: command.args.reason } : {}),
      ...(plan ? { plan: true, decidedBy: (j as { decidedBy?: string }).decidedBy } : {}),
    },
    command.actor,
  );

  if (command.args.dryRun) {
    const would = j.deny ? 'deny' : ev?.outcome === 'approval' ? 'approval' : 'allow';
    const reason = j.deny
      ? `${j.deny.reason} (policy ${j.deny.policy})`
      : would === 'approval' && ev?.approval
        ? `needs ${ev.approval.count} approval(s) from ${ev.approval.groups.join(', ')} (policy ${ev.policy?.name})`
        : `allowed by policy ${ev?.policy?.name}`;
    const decision: Decision = { outcome: 'dryrun', would, reason, policies };
    return {
      ok: true,
      summary: `Dry run: ${verb} of ${what} would be ${would === 'allow' ? 'allowed' : would === 'deny' ? 'denied' : 'sent for approval'}: ${reason}. Nothing was queued.`,
      details: warnings,
      decision,
      data: { decision },
    };
  }
  if (j.deny || !ev) return { ...denyReply(j, policies), details: warnings };

  const opId = newOpId();
  if (ev.outcome === 'approval' && ev.approval && ev.policy) {
    const now = ctx.now();
    const id = await ctx.approvals.nextId();
    const record: ApprovalRecord = {
      id,
      opId,
      verb,
      app,
      requestedBy: command.actor,
      requestedPerson: who.person ?? command.actor,
      required: ev.approval.count,
      groups: ev.approval.groups,
      approvals: [],
      status: 'pending',
      expiresAt: new Date(now + ev.approval.expiresMs).toISOString(),
      expiresAtMs: now + ev.approval.expiresMs,
      policy: ev.policy.name,
      ...(command.channel ? { channel: command.channel } : {}),
      surface: command.surface,
      ...(command.args.reason ? { reason: command.args.reason } : {}),
      args: operationArgs(command),
      ...(plan ? { plan: true } : {}),
    };
    await ctx.approvals.create(record);
    // A plan's card is its message: the facts of one app would not be the plan's.
    const card = plan ? undefined : await gatherCardFacts(ctx, record);
    if (card) await ctx.approvals.saveCard(id, card);
    await saveOpMeta(ctx, {
      opId,
      app,
      verb,
      ...(plan ? { plan: planApps(plan) } : {}),
      requestedBy: command.actor,
      approvalId: id,
      ...(command.channel ? { channel: command.channel } : {}),
    });
    // The expiry: a delayed job, so it fires even if this process is gone by then.
    await ctx.queue.add(
      'approval-expiry',
      { id },
      {
        jobId: `expire-${id}`,
        delay: Math.max(0, record.expiresAtMs - now),
        removeOnComplete: true,
        removeOnFail: 100,
        // Redis or this engine may be away when it is due: try again rather than miss the notice.
        attempts: 5,
        backoff: { type: 'exponential', delay: 1000 },
      },
    );
    await ctx.audit.append(
      'approval',
      {
        id,
        opId,
        app,
        verb,
        status: 'pending',
        required: record.required,
        groups: record.groups,
        policy: record.policy,
        ...(record.reason ? { reason: record.reason } : {}),
      },
      command.actor,
    );
    const actions = approvalActions(id, card);
    const summary = `${TITLE[verb]} of ${what} needs ${record.required} approval(s) from ${record.groups.join(', ')} (not the requester); approve with \`approve ${id}\` within ${formatDuration(ev.approval.expiresMs)}`;
    await ctx.notices.publish({
      kind: 'approval.requested',
      key: `op:${opId}`,
      app,
      targets: plan
        ? planTargets(ctx, planApps(plan), command.channel)
        : targetsFor(ctx, app, command.channel),
      severity: 'warning',
      summary: `${who.person ?? command.actor} asks to ${verb} ${what}: ${record.required} approval(s) needed from ${record.groups.join(', ')} (${id}, expires ${record.expiresAt})`,
      actions,
      data: { approval: publicApproval(record), ...(card ? { card } : {}) },
    });
    const decision: Decision = { outcome: 'approval', approval: publicApproval(record), policies };
    return {
      ok: true,
      summary,
      details: warnings,
      decision,
      data: { decision, ...(card ? { card } : {}) },
      actions,
      thread: `op:${opId}`,
    };
  }

  const queued = plan
    ? await enqueuePlanRun(ctx, {
        verb,
        plan,
        opId,
        requestedBy: command.actor,
        ...(command.args.keepMs !== undefined ? { keepMs: command.args.keepMs } : {}),
        ...(command.channel ? { channel: command.channel } : {}),
      })
    : await enqueueOperation(ctx, {
        verb,
        app,
        opId,
        requestedBy: command.actor,
        args: operationArgs(command),
        ...(command.channel ? { channel: command.channel } : {}),
      });
  if (!queued.ok) return { ok: false, summary: queued.message, details: warnings };
  const decision: Decision = { outcome: 'allow', opId, job: verb, policies };
  return {
    ok: true,
    summary: `${TITLE[verb]} of ${what} queued as ${opId} (policy ${ev.policy?.name ?? '?'})`,
    details: [...warnings, ...('pointsNote' in queued ? [`points: ${queued.pointsNote}`] : [])],
    decision,
    data: { decision, opId },
    actions: [cancelAction(opId, verb, app)],
    thread: `op:${opId}`,
  };
}

export function operationArgs(command: Command): ApprovalRecord['args'] {
  const a = command.args;
  return {
    ...(a.point !== undefined ? { point: a.point } : {}),
    ...(a.keepMs !== undefined ? { keepMs: a.keepMs } : {}),
    ...(a.emergency ? { emergency: true } : {}),
  };
}

/**
 * Approve and Reject. Approving a failover or failback asks first (a confirm dialog), saying what
 * the press does with the facts on the card: the point, the writes lost, the fence.
 */
export function approvalActions(id: string, card?: CardFacts): Action[] {
  const approve: Action = {
    kind: 'approve',
    label: 'Approve',
    words: `approve ${id}`,
    style: 'primary',
  };
  if (card && card.verb !== 'drill') approve.confirm = approveConfirm(card);
  return [approve, { kind: 'reject', label: 'Reject', words: `reject ${id}`, style: 'danger' }];
}

function approveConfirm(card: CardFacts): NonNullable<Action['confirm']> {
  const left = card.approvals.required - card.approvals.names.length;
  const starts =
    left <= 1 ? `Your approval starts it now.` : `Your approval is 1 of the ${left} still needed.`;
  if (card.verb === 'failback')
    return {
      title: `Approve failback of ${card.app}?`,
      text: `The DR copy of ${card.app} is written back to its source and the DR server stops; the app is down while the last changes are copied. ${starts}`,
      yes: 'Approve failback',
    };
  const p = card.point;
  const point = !p?.known
    ? p?.id !== undefined
      ? `point #${p.id}`
      : 'no consistent point yet'
    : `point #${p.id} (${p.label}, ${Math.round(p.ageSeconds ?? 0)} s old)`;
  const loss = card.dataLoss
    ? `Writes after it, about ${Math.round(card.dataLoss.seconds)} s, are lost.`
    : '';
  const fence = card.fence.command
    ? 'The source is fenced first.'
    : 'The source is NOT fenced: make sure it is stopped.';
  return {
    title: `Approve failover of ${card.app}?`,
    text: `${card.app} (${card.tier}) will run from the DR site on ${point}. ${loss} ${fence} ${starts}`
      .replace(/\s+/g, ' ')
      .trim(),
    yes: 'Approve failover',
  };
}

/** Cancel for a running operation; it asks first, as it stops the operation where it is. */
export function cancelAction(opId: string, verb: string, app: string): Action {
  return {
    kind: 'cancel',
    label: 'Cancel',
    words: `cancel ${opId}`,
    style: 'danger',
    confirm: {
      title: `Cancel the ${verb} of ${app}?`,
      text: `This stops the ${verb} of ${app} (${opId}) where it is now; it will not finish.`,
      yes: `Cancel ${verb}`,
    },
  };
}

/** The approval as the contract shows it (without the engine's own fields). */
export function publicApproval(a: ApprovalRecord): ApprovalState {
  return {
    id: a.id,
    opId: a.opId,
    verb: a.verb,
    app: a.app,
    requestedBy: a.requestedBy,
    required: a.required,
    groups: a.groups,
    approvals: a.approvals,
    status: a.status,
    ...(a.rejectedBy ? { rejectedBy: a.rejectedBy } : {}),
    expiresAt: a.expiresAt,
  };
}

/**
 * Puts the operation on the recovery queue through the replicator's contract. The job id is
 * the op id, so enqueuing the same operation twice leaves one job.
 */
export async function enqueueOperation(
  ctx: EngineContext,
  op: {
    verb: OperationVerb;
    app: string;
    opId: string;
    requestedBy: string;
    args: ApprovalRecord['args'];
    channel?: string;
    approvalId?: string;
  },
): Promise<{ ok: true } | { ok: false; message: string }> {
  try {
    const payload =
      op.verb === 'failback'
        ? { opId: op.opId, app: op.app, requestedBy: op.requestedBy }
        : {
            opId: op.opId,
            app: op.app,
            requestedBy: op.requestedBy,
            ...(op.args.point !== undefined ? { point: op.args.point } : {}),
            ...(op.verb === 'drill' && op.args.keepMs !== undefined
              ? { keepMs: op.args.keepMs }
              : {}),
          };
    await saveOpMeta(ctx, {
      opId: op.opId,
      app: op.app,
      verb: op.verb,
      requestedBy: op.requestedBy,
      ...(op.channel ? { channel: op.channel } : {}),
      ...(op.approvalId ? { approvalId: op.approvalId } : {}),
    });
    await ctx.recovery.enqueue(op.verb, payload);
    await ctx.audit.append(
      'job',
      { opId: op.opId, app: op.app, job: op.verb, state: 'queued' },
      op.requestedBy,
    );
    return { ok: true };
  } catch (err) {
    const message = isDrError(err)
      ? err.message
      : `could not queue the ${op.verb}: ${errorMessage(err)}`;
    await ctx.audit.append(
      'job',
      { opId: op.opId, app: op.app, job: op.verb, state: 'refused', error: message },
      op.requestedBy,
    );
    return { ok: false, message };
  }
}
