// Notices about an approval's operation, on its thread, with the card's facts kept in them.
import type { ApprovalRecord } from './approval-store.js';
import type { Notice } from './contract.js';
import { type EngineContext, targetsFor } from './engine-context.js';
import { type CardFacts, withProgress } from './gather-card-facts.js';
import { publicApproval } from './submit-operation.js';

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
