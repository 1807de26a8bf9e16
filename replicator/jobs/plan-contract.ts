/** The plan job's contract: a recovery plan run as one operation, its recorded state and its controls. */
import type { FenceOutcome } from './recovery-contract.js';

export type PlanVerb = 'drill' | 'failover' | 'failback';

/** A step between two groups, in the order the run meets it. */
export type PlanJobStep =
  | { kind: 'hook'; command: string; timeoutMs: number }
  | { kind: 'manual'; prompt: string };

/** One group as the run walks it: its apps together, what it waits for, the steps after it. */
export interface PlanJobGroup {
  apps: string[];
  wait: { kind: 'healthy' } | { kind: 'delay'; ms: number };
  steps: PlanJobStep[];
}

/**
 * What the engine queues for `dr VERB PLAN`: the plan as resolved when it started (groups already
 * in walk order, failback back to front), and the points chosen once for it. Names and ids only.
 */
export interface PlanJob {
  opId: string;
  /** The plan's name (a file in plans/ of the home); events carry it as their `app`. */
  plan: string;
  verb: PlanVerb;
  requestedBy: string;
  groups: PlanJobGroup[];
  /** The point of each app (plan-consistent); absent: each app its latest at its own start. */
  points?: Record<string, number>;
  /** One line on the point choice (policy, instant, skew), for the record and the message. */
  pointsNote?: string;
  /** Drill only: how long each drill server is kept. */
  keepMs?: number;
  /** Set by the worker as the run moves: the plan's record. */
  run?: PlanRun;
  /** True while a worker is inside a pass: found true at the start of one, the last one died. */
  ticking?: boolean;
}

export type AppRunState = 'pending' | 'running' | 'healthy' | 'failed' | 'skipped' | 'rolled-back';

/** One app of the run: the operation now running it, and every operation started for it. */
export interface AppRun {
  app: string;
  state: AppRunState;
  /** The app's operation now (a retry gets a new one). */
  opId?: string;
  /** Every operation the plan started for the app, oldest first: rollback removes each. */
  ops: string[];
  error?: string;
  /** Skipped: who skipped it. */
  by?: string;
  /** Failover: the fence the plan ran before any group started. */
  fence?: FenceOutcome;
  /** Failover: the app's kept drill servers its failover ended first (or could not), one line each. */
  drills?: string[];
  /** Rollback: what was removed or undone for the app. */
  undone?: string[];
}

export type StepRunState = 'pending' | 'running' | 'waiting' | 'done' | 'failed' | 'skipped';

export interface StepRun {
  state: StepRunState;
  /** Manual: who pressed continue; skip: who skipped. */
  by?: string;
  /** Hook: how it ended (`exited 0`, `exited 3: …`, `did not finish within …`). */
  detail?: string;
  at?: number;
}

/** The run's position: a group (index in walk order), or a step after it. */
export interface PlanPosition {
  group: number;
  /** Absent: the group itself; else the index of the step after it. */
  step?: number;
}

export type PlanPhase =
  | 'fencing'
  | 'running'
  | 'waiting-manual'
  | 'waiting-decision'
  | 'rolling-back'
  | 'done'
  | 'rolled-back';

/** The plan's record, kept in its job data (Redis), so a restarted worker goes on from it. */
export interface PlanRun {
  phase: PlanPhase;
  startedAt: number;
  at: PlanPosition;
  /** Per group in walk order: its apps' runs and its steps' runs. */
  groups: { apps: AppRun[]; steps: StepRun[]; upAt?: number }[];
  /** Waiting for a decision: what failed. */
  failure?: { app?: string; step?: number; group: number; error: string };
  /** How many times a worker picked the run up again after it had started. */
  resumes: number;
  /** Which rollback removed what, as lines; and when it ended. */
  rollback?: { by: string; lines: string[]; endedAt?: number };
  endedAt?: number;
}

/** What a person tells a waiting plan: go on after a manual step, retry, skip, or roll back. */
export type PlanControl = 'continue' | 'retry' | 'skip' | 'rollback';

/** A control as stored for the run to take: what, by whom, for which position. */
export interface PlanSignal {
  action: PlanControl;
  by: string;
  at: PlanPosition;
  time: number;
}

/** A finished plan run. */
export interface PlanResult {
  opId: string;
  plan: string;
  mode: 'plan';
  verb: PlanVerb;
  outcome: 'done' | 'rolled-back';
  run: PlanRun;
  totalMs: number;
}

/** Redis keys of the plan contract under the Lifeboat prefix. */
export function planKeys(prefix: string) {
  return {
    /** The control a person sent, for the run to take (one at a time: SET NX). */
    signal: (opId: string) => `${prefix}plan:signal:${opId}`,
    /** Who continued the manual step at `at` (first press wins: SET NX, kept after the run takes it). */
    continued: (opId: string, at: PlanPosition) =>
      `${prefix}plan:continued:${opId}:${at.group}.${at.step ?? '-'}`,
    /** A child operation's plan: `plan:of:<child op>` → the plan's op id. */
    parent: (childOpId: string) => `${prefix}plan:of:${childOpId}`,
    /** One run per plan at a time: the op id that holds it. */
    lock: (plan: string) => `${prefix}plan:lock:${plan}`,
  };
}

/** Where the run stands, as one phrase: `group 2 (api, worker)`, `step 1 after group 1`. */
export function positionText(job: Pick<PlanJob, 'groups'>, at: PlanPosition): string {
  const g = job.groups[at.group];
  if (at.step === undefined) return `group ${at.group + 1} (${g?.apps.join(', ') ?? '?'})`;
  return `step ${at.step + 1} after group ${at.group + 1}`;
}

export const samePosition = (a: PlanPosition, b: PlanPosition) =>
  a.group === b.group && a.step === b.step;
