import { describe, expect, it } from 'vitest';
import type { Explanation } from '../../../engine/explain-command.js';
import { planDecision } from '../../../engine/plan-decision.js';

const ex = (would: Explanation['would'], reason: string): Explanation => ({
  would,
  reason,
  policy: `p-${would}`,
  command: { verb: 'failover', emergency: false },
  actor: 'cli:alice',
  policies: [],
  warnings: [],
});

describe('planDecision: the strictest app decides', () => {
  it('an approval for one app asks for it for the whole plan', () => {
    const d = planDecision([
      { app: 'web', tier: 'dev', explanation: ex('allow', 'allowed') },
      { app: 'db', tier: 'prod', explanation: ex('approval', 'needs 2 approval(s)') },
    ]);
    expect(d).toMatchObject({ would: 'approval', app: 'db', reason: 'needs 2 approval(s)' });
  });

  it('a deny for any app denies the plan, even a dev app beside prod approvals', () => {
    const d = planDecision([
      { app: 'db', tier: 'prod', explanation: ex('approval', 'needs 2') },
      { app: 'cache', tier: 'dev', explanation: ex('deny', 'frozen') },
    ]);
    expect(d).toMatchObject({ would: 'deny', app: 'cache', reason: 'frozen' });
  });

  it('between equal outcomes the stricter tier decides', () => {
    const d = planDecision([
      { app: 'web', tier: 'staging', explanation: ex('approval', 'needs 1') },
      { app: 'db', tier: 'prod', explanation: ex('approval', 'needs 2') },
      { app: 'api', tier: 'dev', explanation: ex('approval', 'needs 1 from devs') },
    ]);
    expect(d).toMatchObject({ app: 'db', tier: 'prod', reason: 'needs 2' });
  });

  it('no apps, no decision', () => {
    expect(planDecision([])).toBeUndefined();
  });
});
