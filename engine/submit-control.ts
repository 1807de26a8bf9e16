import { OP_ID } from '../replicator/jobs/recovery-contract.js';
import type { Command, Reply } from './contract.js';
import { denyReply, failedReply, judge } from './decide.js';
import { type EngineContext, loadOpMeta, targetsFor } from './engine-context.js';
import type { Identity } from './identity.js';
import { publishForApproval } from './publish-for-approval.js';

const APPROVAL_ID = /^A-\d{1,12}$/;
const ALERT_ID = /^AL-\d{1,12}$/;

/** cancel <op|approval>: withdraws a pending approval, or stops a queued or running operation. */
export async function submitCancel(
  ctx: EngineContext,
  command: Command,
  who: Identity,
): Promise<Reply> {
  const id = command.args.id ?? '';
  const approval = APPROVAL_ID.test(id)
    ? await ctx.approvals.get(id)
    : OP_ID.test(id)
      ? await ctx.approvals.byOp(id)
      : undefined;
  if (!approval && !OP_ID.test(id))
    return {
      ok: false,
      private: true,
      summary: `"${id}" is neither an operation (op-…) nor an approval (A-…)`,
    };
  const meta = OP_ID.test(id) ? await loadOpMeta(ctx, id) : undefined;
  const app = approval?.app ?? meta?.app;
  const j = await judge(ctx, { ...command, ...(app ? { app } : {}) }, who);
  if (j.deny) return denyReply(j, j.evaluation?.outcomes ?? []);

  if (approval && approval.status === 'pending') {
    const r = await ctx.approvals.cancel(approval.id, ctx.now());
    const a = r.approval ?? approval;
    if (r.outcome === 'cancelled') {
      await ctx.audit.append(
        'approval',
        { id: a.id, opId: a.opId, status: 'cancelled' },
        command.actor,
      );
      await publishForApproval(ctx, a, {
        kind: 'approval.updated',
        severity: 'info',
        summary: `${who.person ?? command.actor} cancelled ${a.verb} of ${a.app} before it was approved (${a.id})`,
      });
      return {
        ok: true,
        summary: `Cancelled ${a.id}: ${a.verb} of ${a.app} will not run`,
        thread: `op:${a.opId}`,
      };
    }
  }
  const opId = approval?.opId ?? id;
  if (approval && approval.status !== 'granted')
    return {
      ok: false,
      summary: `${approval.id} is ${approval.status}; nothing is running for it`,
    };
  try {
    const { outcome } = await ctx.recovery.cancel(opId, command.actor);
    await ctx.audit.append('job', { opId, state: `cancel:${outcome}` }, command.actor);
    return {
      ok: true,
      thread: `op:${opId}`,
      summary:
        outcome === 'removed'
          ? `${opId} removed from the queue before it started`
          : outcome === 'signalled'
            ? `${opId}: cancel requested; its worker stops at the next check and cleans up`
            : `${opId} already finished; remove what it left with \`cleanup ${opId}\``,
    };
  } catch (err) {
    return failedReply(err, `cannot cancel ${opId}`);
  }
}

/** cleanup <op>: removes what a finished operation left, now. */
export async function submitCleanup(
  ctx: EngineContext,
  command: Command,
  who: Identity,
): Promise<Reply> {
  const opId = command.args.id ?? '';
  if (!OP_ID.test(opId))
    return { ok: false, private: true, summary: `"${opId}" is not an operation id (op-…)` };
  const meta = await loadOpMeta(ctx, opId);
  const j = await judge(ctx, { ...command, ...(meta ? { app: meta.app } : {}) }, who);
  if (j.deny) return denyReply(j, j.evaluation?.outcomes ?? []);
  try {
    await ctx.recovery.cleanup(opId, command.actor);
    await ctx.audit.append('job', { opId, job: 'cleanup', state: 'queued' }, command.actor);
    return { ok: true, summary: `Cleanup of ${opId} queued`, thread: `op:${opId}` };
  } catch (err) {
    return failedReply(err, `cannot clean up ${opId}`);
  }
}

/** ack <alert>: stops the alert's escalation; the first acknowledgement counts. */
export async function submitAck(
  ctx: EngineContext,
  command: Command,
  who: Identity,
): Promise<Reply> {
  const id = command.args.id ?? '';
  if (!ALERT_ID.test(id))
    return {
      ok: false,
      private: true,
      summary: `"${id}" is not an alert id; ack takes one like AL-4`,
    };
  const alert = await ctx.alerts.get(id);
  if (!alert) return { ok: false, private: true, summary: `No alert ${id}` };
  const j = await judge(ctx, { ...command, app: alert.app }, who);
  if (j.deny) return { ...denyReply(j, j.evaluation?.outcomes ?? []), private: true };
  const person = who.person ?? command.actor;
  const r = await ctx.alerts.ack(id, person, ctx.now());
  if (r.outcome === 'already')
    return {
      ok: true,
      private: true,
      summary: `${id} was already acknowledged by ${r.alert?.ackedBy ?? 'someone'}`,
    };
  if (r.outcome === 'resolved')
    return { ok: true, private: true, summary: `${id} is already resolved` };
  if (r.outcome !== 'acked') return { ok: false, private: true, summary: `No alert ${id}` };
  await ctx.audit.append(
    'alert',
    { id, app: alert.app, kind: alert.kind, acked: true },
    command.actor,
  );
  await ctx.notices.publish({
    kind: 'alert.acknowledged',
    key: `alert:${id}`,
    app: alert.app,
    targets: targetsFor(ctx, alert.app, command.channel, 'alerts'),
    severity: 'info',
    summary: `${person} acknowledged ${id} (${alert.kind === 'rpo' ? 'RPO breach' : 'silent agent'} of ${alert.app})`,
    data: { alert: r.alert },
  });
  return {
    ok: true,
    summary: `Acknowledged ${id}; it will not be escalated`,
    thread: `alert:${id}`,
  };
}
