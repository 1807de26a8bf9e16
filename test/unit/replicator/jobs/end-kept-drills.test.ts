// A failover's failure names, on its first line, the drill servers it could not end.
import { describe, expect, it } from 'vitest';
import { withDrillsNote } from '../../../../replicator/jobs/end-kept-drills.js';
import type { EndedDrill } from '../../../../replicator/jobs/recovery-contract.js';

const ended: EndedDrill = {
  opId: 'op-d1',
  ended: true,
  removed: ['process group 12'],
  detail: 'ended drill server of op-d1 first',
};
const left: EndedDrill = {
  opId: 'op-d2',
  ended: false,
  removed: [],
  detail:
    'drill server op-d2 is still running (ending it failed: boom); remove it with `dr cleanup op-d2`',
};

describe('withDrillsNote', () => {
  it('adds the drill servers still running to the first line, the rest unchanged', () => {
    const info = {
      code: 'health_failed',
      message: 'the health check of web failed: x\nlog 1\nlog 2',
    };
    const out = withDrillsNote(info, [ended, left]);
    expect(out.code).toBe('health_failed');
    expect(out.message.split('\n')).toEqual([
      `the health check of web failed: x; ${left.detail}`,
      'log 1',
      'log 2',
    ]);
  });

  it('leaves the message alone when every drill server was ended, or there were none', () => {
    const info = { code: 'internal', message: 'boom' };
    expect(withDrillsNote(info, [ended])).toEqual(info);
    expect(withDrillsNote(info, undefined)).toEqual(info);
  });
});
