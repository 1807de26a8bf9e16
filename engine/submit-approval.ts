import type { ApprovalRecord } from './approval-store.js';
import type { Command, Decision, Notice, Reply, Surface } from './contract.js';
import { denyReply, fired, judge } from './decide.js';
import { type EngineContext, targetsFor } from './engine-context.js';
import {
  type CardFacts,
  fingerprintChanges,
  gatherCardFacts,
  withProgress,
} from './gather-card-facts.js';
import { type Identity, resolveIdentity, SCHEDULER } from './identity.js';
import {
  approvalActions,
  cancelAction,
  enqueueOperation,
  type OperationVerb,
  publicApproval,
} from './submit-operation.js';

const APPROVAL_ID = /^A-\d{1,12}$/;

/**
 * Publishes a notice about an approval's operation on its thread (`op:<opId>`) to the channels
 * of its app and the channel it was asked in; data is the approval unless given, plus the card's
 * facts (`card`, with the approval's progress now) so the message keeps showing them.
 */
export async function publishForApproval(
  ctx: EngineContext,
  a: ApprovalRecord,
  n: Pick<Notice, 'kind' | 'severity' | 'summary'> & Pick<Partial<Notice>, 'actions' | 'data'>,
  card?: CardFacts,
): Promise<Notice> {
  const shown = card ?? (await ctx.approvals.card(a.id));
  const data = 'data' in n ? n.data : { approval: publicApproval(a) };
  return ctx.notices.publish({
    kind: n.kind,
    key: `op:${a.opId}`,
    app: a.app,
    targets: targetsFor(ctx, a.app, a.channel),
    severity: n.severity,
    summary: n.summary,
    ...(n.actions ? { actions: n.actions } : {}),
    data:
      shown && data !== null && typeof data === 'object'
        ? { ...data, card: withProgress(shown, a) }
        : data,
  });
}

const progress = (a: ApprovalRecord) => `${a.approvals.length} of ${a.required}`;

/** approve / reject: idempotent presses; the press that meets the count enqueues the job, once. */
export async function submitPress(
  ctx: EngineContext,
  command: Command,
  who: Identity,
): Promise<Reply> {
  const kind = command.verb as 'approve' | 'reject';
  const id = command.args.id ?? '';
  if (!APPROVAL_ID.test(id))
    return {
      ok: false,
      private: true,
      summary: `"${id}" is not an approval id; ${kind} takes one like A-12`,
    };
  const found = await ctx.approvals.get(id);
  if (!found)
    return {
      ok: false,
      private: true,
      summary: `No approval ${id}: it never existed or was removed after 30 days`,
    };
  const j = await judge(ctx, { ...command, app: found.app }, who);
  if (j.deny) return { ...denyReply(j, j.evaluation?.outcomes ?? []), private: true };

  const person = who.person ?? command.actor;
  const eligible = who.groups.some((g) => found.groups.includes(g));
  if (
    kind === 'approve' &&
    found.status === 'pending' &&
    found.expiresAtMs > ctx.now() &&
    eligible &&
    person !== found.requestedPerson &&
    !found.approvals.some((x) => x.person === person)
  ) {
    const stale = await refreshIfStale(ctx, found, command, person);
    if (stale) return stale;
  }
  const r = await ctx.approvals.press(kind, id, {
    actor: command.actor,
    person,
    eligible,
    now: ctx.now(),
    ...(command.args.reason ? { reason: command.args.reason } : {}),
  });
  const a = r.approval ?? found;
  const thread = `op:${a.opId}`;
  await ctx.audit.append(
    'approval',
    {
      id,
      opId: a.opId,
      press: kind,
      person,
      outcome: r.outcome,
      status: a.status,
      approvals: a.approvals.map((x) => x.person),
    },
    command.actor,
  );
  // Every change of the approval shows facts read now, not those of when it was asked.
  const notify = async (
    k: 'approval.updated' | 'approval.granted' | 'approval.rejected' | 'approval.expired',
    summary: string,
    severity: 'info' | 'warning' = 'info',
  ) => {
    const card = await freshCard(ctx, a);
    return publishForApproval(
      ctx,
      a,
      {
        kind: k,
        severity,
        summary,
        ...(k === 'approval.updated' ? { actions: approvalActions(id, card) } : {}),
      },
      card,
    );
  };

  switch (r.outcome) {
    case 'counted':
      await notify(
        'approval.updated',
        `${person} approved ${a.verb} of ${a.app} (${id}): ${progress(a)}`,
      );
      return {
        ok: true,
        summary: `Approved ${id}: ${progress(a)}; waiting for ${a.required - a.approvals.length} more from ${a.groups.join(', ')}`,
        thread,
        data: { approval: publicApproval(a) },
      };
    case 'granted': {
      await notify(
        'approval.granted',
        `${a.verb} of ${a.app} approved by ${a.approvals.map((x) => x.person).join(' and ')} (${id}); queuing ${a.opId}`,
      );
      return { ...(await startGranted(ctx, a)), thread };
    }
    case 'rejected-now':
      await notify(
        'approval.rejected',
        `${person} rejected ${a.verb} of ${a.app} (${id})${command.args.reason ? `: ${command.args.reason}` : ''}`,
        'warning',
      );
      return {
        ok: true,
        summary: `Rejected ${id}: ${a.verb} of ${a.app} will not run`,
        thread,
        data: { approval: publicApproval(a) },
      };
    case 'repeat':
      return {
        ok: true,
        private: true,
        summary: `You already approved ${id} (${progress(a)}); pressing again does not count twice`,
        thread,
      };
    case 'self':
      return {
        ok: false,
        private: true,
        summary: `You asked for this ${a.verb}; someone else from ${a.groups.join(', ')} must ${kind} ${id}`,
        thread,
      };
    case 'ineligible':
      return {
        ok: false,
        private: true,
        summary: `Only members of ${a.groups.join(', ')} may ${kind} ${id}; ${person} is in ${who.groups.join(', ') || 'no group'}`,
        thread,
      };
    case 'expired-now':
      await notify(
        'approval.expired',
        `${id} (${a.verb} of ${a.app}) expired at ${a.expiresAt} without enough approvals`,
        'warning',
      );
      return {
        ok: false,
        summary: `${id} expired at ${a.expiresAt}; ask again with \`${a.verb} ${a.app}\``,
        thread,
      };
    case 'expired':
      return {
        ok: false,
        private: true,
        summary: `${id} expired at ${a.expiresAt}; ask again with \`${a.verb} ${a.app}\``,
        thread,
      };
    case 'rejected':
      return {
        ok: false,
        private: true,
        summary: `${id} was rejected by ${a.rejectedBy?.person ?? 'someone'}; nothing more to ${kind}`,
        thread,
      };
    case 'granted-already':
      return {
        ok: true,
        private: true,
        summary: `${id} was already approved; ${a.opId} is ${a.enqueued ?? 'queued'}`,
        thread,
      };
    case 'cancelled':
      return {
        ok: false,
        private: true,
        summary: `${id} was withdrawn: its ${a.verb} of ${a.app} was cancelled`,
        thread,
      };
    default:
      return { ok: false, private: true, summary: `No approval ${id}` };
  }
}

/** Enqueues a granted approval's operation and records that it did (or why it could not). */
export async function startGranted(ctx: EngineContext, a: ApprovalRecord): Promise<Reply> {
  const refused = await recheck(ctx, a);
  if (refused) return refused;
  const queued = await enqueueOperation(ctx, {
    verb: a.verb as OperationVerb,
    app: a.app,
    opId: a.opId,
    requestedBy: a.requestedBy,
    args: a.args,
    approvalId: a.id,
    ...(a.channel ? { channel: a.channel } : {}),
  });
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

/** Facts read now for an approval, kept as the card's last shown facts. */
async function freshCard(ctx: EngineContext, a: ApprovalRecord): Promise<CardFacts> {
  const card = await gatherCardFacts(ctx, a);
  await ctx.approvals.saveCard(a.id, card);
  return card;
}

/**
 * An approval counts only for the facts the approver saw. When the point the operation would use
 * or the source's state changed since the card was last shown, the press is not counted: the card
 * is shown again with the facts of now, and the approver asked to press again.
 */
async function refreshIfStale(
  ctx: EngineContext,
  a: ApprovalRecord,
  command: Command,
  person: string,
): Promise<Reply | undefined> {
  const shown = await ctx.approvals.card(a.id);
  if (!shown) return undefined; // asked before cards had facts: nothing to compare with
  const now = await gatherCardFacts(ctx, a);
  const changes = fingerprintChanges(shown.fingerprint, now.fingerprint);
  if (changes.length === 0) return undefined;
  await ctx.approvals.saveCard(a.id, now);
  await ctx.audit.append(
    'approval',
    { id: a.id, opId: a.opId, press: 'approve', person, outcome: 'stale', changed: changes },
    command.actor,
  );
  await publishForApproval(
    ctx,
    a,
    {
      kind: 'approval.updated',
      severity: 'warning',
      summary: `The facts of ${a.verb} of ${a.app} changed since the card was shown (${changes.join('; ')}); the card shows them now: ${progress(a)} approvals (${a.id})`,
      actions: approvalActions(a.id, now),
    },
    now,
  );
  return {
    ok: false,
    private: true,
    summary: `Not counted: the facts changed since the card was shown (${changes.join('; ')}). The card now shows them; approve again if you still approve (\`approve ${a.id}\`).`,
    thread: `op:${a.opId}`,
    data: { approval: publicApproval(a), card: now, stale: changes },
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
async function recheck(ctx: EngineContext, a: ApprovalRecord): Promise<Reply | undefined> {
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
  const j = await judge(ctx, command, resolveIdentity(ctx.config, a.requestedBy));
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
