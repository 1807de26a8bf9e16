// The cut: what the rounds left in the open batch goes on the wire before the freeze, so the link
// carries it while the freeze is entered and the blocks are copied.
import { describe, expect, it } from 'vitest';
import { silentLog } from '../../../../core/log.js';
import { frozenCut } from '../../../../replicator/agent/cut.js';
import type { MacState } from '../../../../replicator/agent/mac-state.js';
import type { Shipper } from '../../../../replicator/agent/shipper.js';
import type { Quiescer } from '../../../../replicator/capture/quiesce.js';

describe('frozenCut', () => {
  function parts(freezeFails = false) {
    const order: string[] = [];
    const shipper: Shipper = {
      blocks: 0,
      plainBytes: 0,
      bytesSent: 0,
      lastAcked: 0,
      async add() {
        order.push('add');
      },
      async flush() {
        order.push('flush');
      },
      async finish() {
        order.push('finish');
      },
      async settle() {},
      close() {},
    };
    const quiescer = {
      enabled: true,
      async freeze() {
        order.push('freeze');
        if (freezeFails) throw new Error('fsfreeze: Operation not supported');
        return {
          label: 'crash-consistent' as const,
          enterMs: 1,
          async thaw() {
            order.push('thaw');
            return { frozenMs: 2, expired: false };
          },
        };
      },
    } as unknown as Quiescer;
    const ctx = {
      volumes: [],
      macState: { macs: new Map() } as unknown as MacState,
      log: silentLog,
      now: Date.now,
      phase: () => 'continuous' as const,
      onResync: () => {},
    };
    return { order, shipper, quiescer, ctx };
  }

  it('sends the open batch before freezing', async () => {
    const { order, shipper, quiescer, ctx } = parts();
    const cut = await frozenCut(ctx, quiescer, shipper);
    expect(cut.label).toBe('crash-consistent');
    expect(order).toEqual(['flush', 'freeze', 'thaw']);
  });

  it('sends it too when the freeze then fails (the point is fuzzy)', async () => {
    const { order, shipper, quiescer, ctx } = parts(true);
    const cut = await frozenCut(ctx, quiescer, shipper);
    expect(cut.label).toBe('fuzzy');
    expect(cut.freezeError).toContain('Operation not supported');
    expect(order).toEqual(['flush', 'freeze']);
  });
});
