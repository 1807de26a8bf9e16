/** The plan run's record and its moves: pure functions over PlanRun, so each move is testable alone. */
import type {
  AppRun,
  PlanJob,
  PlanPosition,
  PlanRun,
  PlanSignal,
  StepRun,
} from './plan-contract.js';
import { positionText, samePosition } from './plan-contract.js';

/** A fresh record: every app pending, every step pending, at the first group (after the fences). */
export function initialRun(job: PlanJob, now: number): PlanRun {
  return {
    phase: job.verb === 'failover' ? 'fencing' : 'running',
    startedAt: now,
    at: { group: 0 },
    groups: job.groups.map((g) => ({
      apps: g.apps.map((app): AppRun => ({ app, state: 'pending', ops: [] })),
      steps: g.steps.map((): StepRun => ({ state: 'pending' })),
    })),
    resumes: 0,
  };
}

/** Every app run of the record, in walk order. */
export function allApps(run: PlanRun): AppRun[] {
  return run.groups.flatMap((g) => g.apps);
}

/** The next position after `at`: the group's first step, the next step, or the next group. */
export function nextPosition(job: PlanJob, at: PlanPosition): PlanPosition | undefined {
  const steps = job.groups[at.group]?.steps.length ?? 0;
  const nextStep = at.step === undefined ? 0 : at.step + 1;
  if (nextStep < steps) return { group: at.group, step: nextStep };
  return at.group + 1 < job.groups.length ? { group: at.group + 1 } : undefined;
}

/** Moves the run on from where it stands; the last position done ends it. */
export function advance(job: PlanJob, run: PlanRun, now: number): void {
  const next = nextPosition(job, run.at);
  if (next) {
    run.at = next;
    run.phase = 'running';
    return;
  }
  run.phase = 'done';
  run.endedAt = now;
}

/** Whether the run waits for a person (a manual step, or a decision after a failure). */
export const isWaiting = (run: PlanRun) =>
  run.phase === 'waiting-manual' || run.phase === 'waiting-decision';

/** Whether nothing more will happen to the run. */
export const isFinished = (run: PlanRun) => run.phase === 'done' || run.phase === 'rolled-back';

/**
 * Why a control cannot apply to the run as it stands, or undefined when it can: `continue` only
 * at a manual step, `retry` and `skip` only after a failure, `rollback` while the run is not over
 * (and not already rolling back). The engine asks this before it stores the control; the run asks
 * again when it takes it, since the run may have moved meanwhile.
 */
export function controlProblem(
  job: PlanJob,
  run: PlanRun | undefined,
  action: PlanSignal['action'],
  at?: PlanPosition,
): string | undefined {
  const name = `${job.verb} of plan ${job.plan} (${job.opId})`;
  if (!run) return `the ${name} has not started yet; wait for its first group`;
  if (run.phase === 'done') return `the ${name} is finished: nothing to ${action}`;
  if (run.phase === 'rolled-back')
    return `the ${name} was rolled back already: nothing to ${action}`;
  if (run.phase === 'rolling-back') return `the ${name} is rolling back now`;
  if (at && !samePosition(at, run.at))
    return `the ${name} has moved on from ${positionText(job, at)}; it is at ${positionText(job, run.at)}`;
  if (action === 'rollback') return undefined;
  if (action === 'continue') {
    if (run.phase !== 'waiting-manual') {
      const done = lastManualDone(job, run);
      return done
        ? `the manual step "${done.prompt}" was already continued by ${done.by}; the ${name} is ${phaseText(job, run)}`
        : `the ${name} waits at no manual step; it is ${phaseText(job, run)}`;
    }
    return undefined;
  }
  if (run.phase !== 'waiting-decision')
    return `the ${name} is not waiting after a failure (it is ${phaseText(job, run)}); ${action} applies only when a group or a step failed`;
  return undefined;
}

/** What the run is doing, as a phrase: `running group 2 (api, worker)`. */
export function phaseText(job: PlanJob, run: PlanRun): string {
  const where = positionText(job, run.at);
  switch (run.phase) {
    case 'fencing':
      return 'fencing the sources';
    case 'running':
      return `running ${where}`;
    case 'waiting-manual':
      return `waiting at ${where} for a person to continue`;
    case 'waiting-decision':
      return `stopped at ${where} after a failure, waiting for retry, skip or rollback`;
    case 'rolling-back':
      return 'rolling back';
    case 'done':
      return 'done';
    case 'rolled-back':
      return 'rolled back';
  }
}

/** The newest manual step a person continued, for the refusal of a second press. */
function lastManualDone(job: PlanJob, run: PlanRun): { prompt: string; by: string } | undefined {
  for (let g = run.groups.length - 1; g >= 0; g--) {
    const steps = run.groups[g]?.steps ?? [];
    for (let s = steps.length - 1; s >= 0; s--) {
      const step = job.groups[g]?.steps[s];
      const r = steps[s];
      if (step?.kind === 'manual' && r?.state === 'done' && r.by)
        return { prompt: step.prompt, by: r.by };
    }
  }
  return undefined;
}

/**
 * Applies a person's control to the run (already checked by `controlProblem`): continue marks the
 * manual step done and moves on; retry sets the failed app (or step) pending again; skip marks it
 * skipped and goes on without it; rollback turns the run to rolling back.
 */
export function applyControl(job: PlanJob, run: PlanRun, s: PlanSignal, now: number): void {
  const group = run.groups[run.at.group];
  if (s.action === 'rollback') {
    run.phase = 'rolling-back';
    run.rollback = { by: s.by, lines: [] };
    return;
  }
  if (s.action === 'continue') {
    const step = run.at.step !== undefined ? group?.steps[run.at.step] : undefined;
    if (step) Object.assign(step, { state: 'done', by: s.by, at: now });
    advance(job, run, now);
    return;
  }
  const failure = run.failure;
  delete run.failure;
  run.phase = 'running';
  const app = failure?.app ? group?.apps.find((a) => a.app === failure.app) : undefined;
  const step = failure?.step !== undefined ? group?.steps[failure.step] : undefined;
  if (s.action === 'retry') {
    if (app) {
      app.state = 'pending';
      delete app.opId;
      delete app.error;
    }
    if (step) Object.assign(step, { state: 'pending', by: s.by, at: now });
    return;
  }
  // skip
  if (app)
    Object.assign(app, {
      state: 'skipped',
      by: s.by,
      error: `${app.error ?? ''} (skipped by ${s.by})`,
    });
  if (step) {
    Object.assign(step, { state: 'skipped', by: s.by, at: now });
    advance(job, run, now);
  }
}
