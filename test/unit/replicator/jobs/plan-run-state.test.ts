import { describe, expect, it } from 'vitest';
import type { PlanJob, PlanSignal } from '../../../../replicator/jobs/plan-contract.js';
import {
  advance,
  applyControl,
  controlProblem,
  initialRun,
  nextPosition,
} from '../../../../replicator/jobs/plan-run-state.js';

const job = (verb: PlanJob['verb'] = 'failover'): PlanJob => ({
  opId: 'op-plan1234',
  plan: 'shop',
  verb,
  requestedBy: 'slack:USAM',
  groups: [
    {
      apps: ['db'],
      wait: { kind: 'healthy' },
      steps: [{ kind: 'hook', command: 'true', timeoutMs: 1000 }],
    },
    {
      apps: ['api', 'worker'],
      wait: { kind: 'delay', ms: 20_000 },
      steps: [{ kind: 'manual', prompt: 'DNS switched — continue' }],
    },
    { apps: ['web'], wait: { kind: 'healthy' }, steps: [] },
  ],
});

const signal = (action: PlanSignal['action'], by = 'tom'): PlanSignal => ({
  action,
  by,
  at: { group: 1, step: 0 },
  time: 1,
});

describe('a plan run as a record', () => {
  it('walks groups and the steps between them, then ends', () => {
    const d = job();
    expect(nextPosition(d, { group: 0 })).toEqual({ group: 0, step: 0 });
    expect(nextPosition(d, { group: 0, step: 0 })).toEqual({ group: 1 });
    expect(nextPosition(d, { group: 1, step: 0 })).toEqual({ group: 2 });
    expect(nextPosition(d, { group: 2 })).toBeUndefined();
    const run = initialRun(d, 5);
    expect(run.phase).toBe('fencing');
    expect(initialRun(job('drill'), 5).phase).toBe('running');
    run.at = { group: 2 };
    advance(d, run, 9);
    expect(run.phase).toBe('done');
    expect(run.endedAt).toBe(9);
  });

  it('takes continue only at a manual step, once, and names who continued', () => {
    const d = job();
    const run = initialRun(d, 0);
    run.phase = 'running';
    run.at = { group: 1 };
    expect(controlProblem(d, run, 'continue')).toContain('waits at no manual step');
    run.at = { group: 1, step: 0 };
    run.phase = 'waiting-manual';
    expect(controlProblem(d, run, 'continue')).toBeUndefined();
    applyControl(d, run, signal('continue'), 7);
    expect(run.at).toEqual({ group: 2 });
    expect(run.groups[1]?.steps[0]).toMatchObject({ state: 'done', by: 'tom' });
    expect(controlProblem(d, run, 'continue')).toContain(
      'the manual step "DNS switched — continue" was already continued by tom',
    );
    // A control sent for a position the run has left is refused, not applied elsewhere.
    expect(controlProblem(d, run, 'rollback', { group: 1, step: 0 })).toContain(
      'has moved on from step 1 after group 2',
    );
  });

  it('retries or skips only after a failure', () => {
    const d = job();
    const run = initialRun(d, 0);
    run.phase = 'running';
    run.at = { group: 1 };
    expect(controlProblem(d, run, 'retry')).toContain('is not waiting after a failure');
    const api = run.groups[1]?.apps[0];
    if (!api) throw new Error('no api');
    Object.assign(api, { state: 'failed', opId: 'op-api1111', ops: ['op-api1111'], error: 'x' });
    run.phase = 'waiting-decision';
    run.failure = { group: 1, app: 'api', error: 'x' };
    expect(controlProblem(d, run, 'retry')).toBeUndefined();
    applyControl(d, run, signal('retry'), 3);
    expect(api.state).toBe('pending');
    expect(api.opId).toBeUndefined();
    expect(api.ops).toEqual(['op-api1111']); // rollback still knows the first attempt
    expect(run.phase).toBe('running');

    Object.assign(api, { state: 'failed' });
    run.phase = 'waiting-decision';
    run.failure = { group: 1, app: 'api', error: 'x' };
    applyControl(d, run, signal('skip', 'sam'), 4);
    expect(api.state).toBe('skipped');
    expect(api.error).toContain('skipped by sam');
    expect(api.by).toBe('sam');
  });

  it('refuses every control once the run is over, and a second rollback', () => {
    const d = job();
    const run = initialRun(d, 0);
    expect(controlProblem(d, undefined, 'rollback')).toContain('has not started yet');
    applyControl(d, run, signal('rollback'), 1);
    expect(run.phase).toBe('rolling-back');
    expect(controlProblem(d, run, 'rollback')).toContain('is rolling back now');
    run.phase = 'rolled-back';
    expect(controlProblem(d, run, 'rollback')).toBe(
      'the failover of plan shop (op-plan1234) was rolled back already: nothing to rollback',
    );
    run.phase = 'done';
    expect(controlProblem(d, run, 'retry')).toContain('is finished: nothing to retry');
  });
});
