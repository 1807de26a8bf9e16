// Approvals asked for and pressed: the card published, each press counted once, the last one starting the operation.
import type { ApprovalRecord } from './approval-store.js';
import type { Command, Reply } from './contract.js';
import { denyReply, judge } from './decide.js';
import type { EngineContext } from './engine-context.js';
import { type CardFacts, fingerprintChanges, gatherCardFacts } from './gather-card-facts.js';
import type { Identity } from './identity.js';
import { publishForApproval } from './publish-for-approval.js';
import { progress, startGranted } from './start-granted.js';
import { approvalActions, publicApproval } from './submit-operation.js';

const APPROVAL_ID = /^A-\d{1,12}$/;

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

/** Facts read now for an approval, kept as the card's last shown facts. */
async function freshCard(ctx: EngineContext, a: ApprovalRecord): Promise<CardFacts | undefined> {
  if (a.plan) return undefined; // a plan's message is its own card (plan-notice.ts)
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
