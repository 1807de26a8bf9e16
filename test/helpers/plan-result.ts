/** Plan runs' results as the plan job records them (replicator/jobs' PlanResult), for report tests. */

/** A plan run's result as the plan job records it: group 1 (db) up after 40 s, a 5 s hook, web 20 s. */
export function planResult(start: number, over: Record<string, unknown> = {}) {
  return {
    opId: 'op-plan1',
    plan: 'shop',
    mode: 'plan',
    verb: 'drill',
    outcome: 'done',
    totalMs: 66_000,
    run: {
      phase: 'done',
      startedAt: start,
      endedAt: start + 66_000,
      at: { group: 1 },
      resumes: 0,
      groups: [
        {
          apps: [{ app: 'db', state: 'healthy', ops: ['op-a'] }],
          steps: [{ state: 'done', detail: 'exited 0', at: start + 45_000 }],
          upAt: start + 40_000,
        },
        {
          apps: [{ app: 'web', state: 'healthy', ops: ['op-b'] }],
          steps: [],
          upAt: start + 65_000,
        },
      ],
    },
    ...over,
  };
}
