import type { Command, ControlPlane, Reply } from '../../engine/contract.js';

/**
 * A control plane written for the surface tests: `status` and `failover` answer from a table,
 * and approvals of A-1 need someone other than `requester` (the actor id on the surface under
 * test). With `details`, the status and failover replies carry detail lines too.
 */
export class TablePlane implements ControlPlane {
  readonly seen: Command[] = [];
  constructor(private readonly o: { requester: string; details?: boolean }) {}

  async submit(c: Command): Promise<Reply> {
    this.seen.push(c);
    if (c.verb === 'status')
      return {
        ok: true,
        summary: 'prod-web: protected, 2 s behind',
        ...(this.o.details ? { details: ['APP       LAG', 'prod-web  2s'] } : {}),
      };
    if (c.verb === 'failover') {
      return {
        ok: true,
        summary: `Failover of ${c.app} needs 2 approvals from sre-oncall: A-1`,
        ...(this.o.details ? { details: ['requested by you', 'expires in 30m'] } : {}),
        thread: 'op:op-1',
        actions: [
          { kind: 'approve', label: 'Approve', words: 'approve A-1', style: 'primary' },
          { kind: 'reject', label: 'Reject', words: 'reject A-1', style: 'danger' },
        ],
      };
    }
    if (c.verb === 'approve' && c.actor === this.o.requester) {
      return {
        ok: false,
        summary: 'You asked for this failover, so you cannot approve it.',
        private: true,
      };
    }
    if (c.verb === 'approve') return { ok: true, summary: `Approved A-1 (1 of 2) by ${c.actor}` };
    return { ok: false, summary: `not in this test: ${c.verb}` };
  }
}
