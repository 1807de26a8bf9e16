// Step names read the same in chat and on the command line, each step once.
import { describe, expect, it } from 'vitest';
import { auditLine } from '../../../engine/audit-line.js';
import { stepLabel } from '../../../engine/step-label.js';

describe('operation steps and history lines', () => {
  it('names each finished step once, in words', () => {
    const seen = [
      'resolved',
      'materialise',
      'materialised',
      'launch',
      'launched',
      'health',
      'healthy',
    ]
      .map(stepLabel)
      .filter((l) => l !== undefined);
    expect(seen).toEqual([
      'recovery point chosen',
      'volumes materialised',
      'server launched',
      'health check passed',
    ]);
    expect(stepLabel('some-new-step')).toBe('some new step');
    // an instant failover's hydration: quarters as whole steps, then the end
    expect(['hydrate', 'hydrated-50', 'hydrated'].map(stepLabel)).toEqual([
      undefined,
      'half of the volumes local',
      'volumes hydrated: the recovery no longer needs the gateway',
    ]);
  });

  it('writes an audit entry as one short line, never as JSON', () => {
    const base = { seq: 1, time: Date.UTC(2026, 11, 7, 1, 2, 3), prev: '', hash: '' };
    expect(
      auditLine({
        ...base,
        type: 'result',
        actor: 'worker',
        data: {
          opId: 'op-1',
          app: 'web',
          job: 'drill',
          ok: false,
          error: { message: 'health check failed:\n  line 1\n  line 2' },
        },
      }),
    ).toBe(
      '2026-12-07 01:02:03  drill web op-1: failed: health check failed: line 1 line 2  by worker',
    );
    expect(
      auditLine({
        ...base,
        type: 'approval',
        data: { id: 'A-1', app: 'web', verb: 'failover', status: 'pending', required: 2 },
      }),
    ).toBe('2026-12-07 01:02:03  approval A-1 for failover web: pending (2 needed)');
    // A drill's cleanup run by a failover before it launched says for which.
    expect(
      auditLine({
        ...base,
        type: 'result',
        data: {
          opId: 'op-d1',
          app: 'web',
          job: 'cleanup',
          ok: true,
          result: { opId: 'op-d1', removed: [], endedFor: 'op-f1' },
        },
      }),
    ).toBe('2026-12-07 01:02:03  cleanup web op-d1: succeeded (ended before op-f1 launched)');
    const long = auditLine({
      ...base,
      type: 'job',
      data: { opId: 'op-2', state: 'refused', error: 'x'.repeat(500) },
    });
    expect(long.length).toBeLessThan(200);
    expect(long).not.toContain('{');
  });
});
