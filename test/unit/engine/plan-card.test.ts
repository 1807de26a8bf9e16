// A plan failover's message names, under the app, the kept drill servers its failover ended first.
import { describe, expect, it } from 'vitest';
import { planLines } from '../../../engine/plan-card.js';
import type { PlanJob } from '../../../replicator/jobs/plan-contract.js';
import { initialRun } from '../../../replicator/jobs/plan-run-state.js';

describe('plan card', () => {
  it('shows the drill servers an app’s failover ended, under its group', () => {
    const d: PlanJob = {
      opId: 'op-plan1',
      plan: 'shop',
      verb: 'failover',
      requestedBy: 'local:admin',
      groups: [
        { apps: ['db'], wait: { kind: 'healthy' }, steps: [] },
        { apps: ['web'], wait: { kind: 'healthy' }, steps: [] },
      ],
    };
    const run = initialRun(d, 0);
    run.phase = 'running';
    run.at = { group: 1 };
    const db = run.groups[0]?.apps[0];
    if (db) Object.assign(db, { state: 'healthy', opId: 'op-f1', ops: ['op-f1'] });
    const web = run.groups[1]?.apps[0];
    if (web) {
      Object.assign(web, { state: 'healthy', opId: 'op-f2', ops: ['op-f2'] });
      web.drills = [
        'ended drill server of op-d1 first',
        'drill server op-d2 is still running (ending it failed: x); remove it with `dr cleanup op-d2`',
      ];
    }
    d.run = run;
    const lines = planLines(d);
    const at = lines.findIndex((l) => l.includes('2. web healthy (op-f2)'));
    expect(at).toBeGreaterThan(0);
    expect(lines.slice(at + 1, at + 3)).toEqual([
      '   web: ended drill server of op-d1 first',
      '   web: drill server op-d2 is still running (ending it failed: x); remove it with `dr cleanup op-d2`',
    ]);
    expect(lines.some((l) => l.startsWith('   db:'))).toBe(false);
  });
});
