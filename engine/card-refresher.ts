/** Keeps pending approval cards true: when the facts an approver decides on change, the card shows the new ones. */
import { createHash } from 'node:crypto';
import { errorMessage } from '../core/errors.js';
import type { EngineContext } from './engine-context.js';
import { fingerprintChanges, gatherCardFacts } from './gather-card-facts.js';
import { publishForApproval } from './publish-for-approval.js';
import { approvalActions } from './submit-operation.js';

/**
 * Looks at the pending approvals every `everyMs` and, for each whose point or source state changed
 * since its card was last shown, publishes the card again with the facts of now. Several engines
 * may look at once: a lock per approval and set of facts lets one of them publish.
 */
export class CardRefresher {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly ctx: EngineContext,
    private readonly everyMs = 15_000,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      this.running = this.running
        .then(() => this.tick())
        .catch((err: unknown) =>
          this.ctx.log.warn(
            { err: errorMessage(err) },
            'approval cards: refresh failed; next one soon',
          ),
        );
    }, this.everyMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  /** One look; returns how many cards it showed again. Public so tests can step it. */
  async tick(): Promise<number> {
    const { ctx } = this;
    const now = ctx.now();
    let shownAgain = 0;
    for (const a of await ctx.approvals.recent(100)) {
      if (a.status !== 'pending' || a.expiresAtMs <= now) continue;
      const shown = await ctx.approvals.card(a.id);
      if (!shown) continue; // asked before cards had facts
      const fresh = await gatherCardFacts(ctx, a);
      const changes = fingerprintChanges(shown.fingerprint, fresh.fingerprint);
      if (changes.length === 0) continue;
      const digest = createHash('sha256').update(fresh.fingerprint).digest('hex').slice(0, 16);
      const mine = await ctx.redis.set(
        `${ctx.prefix}approval:${a.id}:refresh:${digest}`,
        '1',
        'EX',
        300,
        'NX',
      );
      if (mine !== 'OK') continue; // another engine shows these facts
      await ctx.approvals.saveCard(a.id, fresh);
      await ctx.audit.append('approval', { id: a.id, opId: a.opId, refreshed: changes });
      await publishForApproval(
        ctx,
        a,
        {
          kind: 'approval.updated',
          severity: 'warning',
          summary: `The facts of ${a.verb} of ${a.app} changed (${changes.join('; ')}): ${a.approvals.length} of ${a.required} approvals (${a.id})`,
          actions: approvalActions(a.id, fresh),
        },
        fresh,
      );
      shownAgain++;
    }
    return shownAgain;
  }
}
