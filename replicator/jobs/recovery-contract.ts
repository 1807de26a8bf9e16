import type { Launched, MaterialisedVolume } from '../providers/provider.js';
import type { PlanResult } from './plan-contract.js';

/**
 * The recovery job contract: what the engine, the bot and `dr` put on the queue, what the
 * workers answer, and the events every operation emits. Nothing outside replicator/ defines these.
 */

/** The BullMQ queue every recovery job goes through. */
export const RECOVERY_QUEUE = 'lifeboat-recovery';

/** Redis key prefix of everything Lifeboat keeps there; BullMQ's prefix is the same without the colon. */
export const DEFAULT_PREFIX = 'lifeboat:';

export const JOB_NAMES = ['drill', 'failover', 'failback', 'verify', 'cleanup', 'plan'] as const;
export type JobName = (typeof JOB_NAMES)[number];

/** Operation ids name directories and Redis keys: the one check is in core/names. */
export { OP_ID } from '../../core/names.js';

/**
 * What every operation job carries. Job data sits in Redis in clear text: it names the app and
 * the point, never a key or a credential (the worker loads those from its own DR_HOME).
 */
export interface OperationPayload {
  opId: string;
  app: string;
  /** Point id; absent means the latest consistent point. */
  point?: number;
  /** Drill only: how long the drill server is kept before the cleanup job removes it; 30 min by default. */
  keepMs?: number;
  /** Who asked, like `local:alice` or `slack:U123`; shown in conflicts and events. */
  requestedBy: string;
  /** Failover run by a plan: the plan fenced the source already (last group first); this is how. */
  fenced?: FenceOutcome;
}

export type DrillJob = Omit<OperationPayload, 'fenced'>;
export type FailoverJob = Omit<OperationPayload, 'keepMs'>;
export type FailbackJob = Pick<OperationPayload, 'opId' | 'app' | 'requestedBy'>;
export type VerifyJob = Omit<OperationPayload, 'keepMs' | 'fenced'>;
/** Removes what an operation left: its server (through the provider) and its recovery directory. */
export interface CleanupJob {
  opId: string;
  app: string;
  requestedBy: string;
}

/** The steps of a drill or failover, in order; a retried job resumes after the last one recorded. */
export const STEPS = ['resolved', 'materialised', 'launched', 'healthy'] as const;
export type StepName = (typeof STEPS)[number];

/** What a failover did about its source, as its result, its message and the audit log say. */
export interface FenceOutcome {
  /** True only when the app's fence command ran and exited 0. */
  fenced: boolean;
  /** One line: what happened, and when not fenced, what to do. */
  detail: string;
  ms: number;
}

/** What the worker records in job data (`job.updateData`) as each step completes. */
export interface RecordedSteps {
  /** ms since epoch when the operation first started. */
  startedAt?: number;
  /**
   * Failover only: the provider's check of the candidate point's system volume passed before
   * replication was stopped (the launch checks the final point again).
   */
  preflighted?: { point: number; warnings: string[] };
  /** Failover only: the source's fence ran (or there was none); never run twice. */
  fenced?: FenceOutcome;
  resolved?: { point: number; pointTime: string; label: string; dataAgeSeconds: number };
  materialised?: {
    volumes: MaterialisedVolume[];
    ms: number;
    /** Served on demand by the worker that recorded it (FUSE); another worker serves it again. */
    instant?: boolean;
    /** Why a recovery that would have been instant materialised in full. */
    fullBecause?: string;
  };
  /** Failover only: the app's kept drill servers, ended before anything was launched. */
  drills?: EndedDrill[];
  launched?: { server: Launched; ms: number };
  healthy?: { output: string; ms: number };
  /** How many times the job was picked up again after it started (a crash or a retry). */
  resumes?: number;
}

/**
 * A kept drill server of the app that a failover ended first (its cleanup run at once, its
 * delayed cleanup job removed), or could not end: then it still runs and `detail` says how to
 * remove it.
 */
export interface EndedDrill {
  /** The drill's op id. */
  opId: string;
  ended: boolean;
  /** What its cleanup removed. */
  removed: string[];
  /** One line: `ended drill server of op-… first`, or why not and `dr cleanup op-…`. */
  detail: string;
}

/** Job data as stored: the payload plus the steps done so far. */
export type RecoveryJobData = OperationPayload & { steps?: RecordedSteps };

/** Time to recovery, split by step. On a resumed job each step counts the run that completed it. */
export interface Rto {
  materialiseMs: number;
  launchMs: number;
  healthyMs: number;
  /** From the operation's start to healthy, wall clock, pauses of a crash included. */
  totalMs: number;
}

/** A finished drill or failover. */
export interface OperationResult {
  opId: string;
  app: string;
  mode: 'drill' | 'failover';
  point: number;
  /** How old the point's data was when the operation started. */
  dataAgeSeconds: number;
  rto: Rto;
  health: { ok: boolean; output: string };
  server: Launched;
  /** How many times the job was picked up again (a crashed worker, a retry) before it finished. */
  resumes: number;
  /** Drill only: when the delayed cleanup job will remove the server (ISO time). */
  cleanupAt?: string;
  /** Failover only: whether the source was fenced before the recovered server started. */
  fence?: FenceOutcome;
  /** How the volumes were recovered: served on demand (instant) or materialised in full. */
  recovery?: RecoveryKind;
  /** Failover only: the app's kept drill servers it ended before launching (or could not). */
  drills?: EndedDrill[];
}

/** Instant (on-demand, hydrating behind) or full materialisation, and what came of it. */
export interface RecoveryKind {
  kind: 'instant' | 'full';
  /** Full although instant was asked for: why (no /dev/fuse, no binding …). */
  why?: string;
  /** Instant: how far hydration had got when the result was written, 0..1. */
  hydrated?: number;
  /** Instant failover: how long hydration took, and when the recovery stopped needing the gateway. */
  hydration?: { ms: number; independentAt: string; bytes: number; retries: number };
}

export interface CleanupResult {
  opId: string;
  removed: string[];
  /** Run by this failover before it launched, rather than by the drill's delayed cleanup job. */
  endedFor?: string;
}

/** The steps of a failback, in order; a retried job resumes after the last one recorded. */
export const FAILBACK_STEPS = ['found', 'precopied', 'frozen', 'synced', 'switched'] as const;
export type FailbackStepName = (typeof FAILBACK_STEPS)[number];

/** One volume copied back: the recovered image onto the original. */
export interface FailbackVolume {
  name: string;
  /** The recovered server's image (the source of the copy). */
  image: string;
  /** The original volume (its path in dr.yaml), the target. */
  original: string;
  size: number;
}

/** Bytes of one volume a failback pass wrote to the original (blocks whose keyed MAC differed). */
export interface FailbackTransfer {
  name: string;
  size: number;
  blocks: number;
  blocksSent: number;
  bytesSent: number;
}

/** What a failback job records in job data as each step completes. */
export interface FailbackSteps {
  startedAt?: number;
  /** The failover being undone, from the gateway's failed-over mark and that job's steps. */
  found?: { failoverOpId: string; point: number; server: Launched; volumes: FailbackVolume[] };
  /** Way home (ECS): the agent on the recovered server was started; `after` is the way home's newest point then. */
  homeStarted?: { at: number; after: number; said: string };
  /** Way home: its first point after the start (the whole volumes are home). */
  homeCopied?: { point: number };
  /** Copy while the recovered server still runs. */
  precopied?: { transfers: FailbackTransfer[]; ms: number };
  /**
   * The final cut: the recovered server frozen (its hook, fsfreeze of its mounts), or stopped
   * when it had nothing to freeze. From here the originals get nothing it writes. Way home
   * (ECS): stopped, and `point` is the last cut its agent took after the app's fence.
   */
  frozen?: {
    at: number;
    how: 'frozen' | 'stopped';
    hook?: boolean;
    mounts?: string[];
    point?: number;
  };
  /** The recovered server stopped after the final copy (killed while still frozen). */
  stopped?: { at: number };
  /** The last differing blocks copied and the originals flushed. */
  synced?: { transfers: FailbackTransfer[]; ms: number };
  /** The app's unfence command ran (the source is back in service), or there was none. */
  unfenced?: { ran: boolean; ms: number };
  /** The gateway's failed-over mark lifted: the agent may replicate again. */
  switched?: { at: number; lastPoint: number };
  resumes?: number;
}

export type FailbackJobData = FailbackJob & { steps?: FailbackSteps };

/** A finished failback: the original site holds everything the recovered server wrote. */
export interface FailbackResult {
  opId: string;
  app: string;
  mode: 'failback';
  failoverOpId: string;
  /** Per volume, both passes together. */
  volumes: FailbackTransfer[];
  /** Bytes written to the original volumes, both passes, against their total size. */
  bytesSent: number;
  size: number;
  /** Pre-copy with the server running, then the frozen final pass: its time is the downtime. */
  precopyMs: number;
  downtimeMs: number;
  totalMs: number;
  resumes: number;
  /** What of the failover was removed after the switch (its stopped server and images). */
  removed: string[];
  /** Whether the app's unfence command ran (false: there is none; start the app by hand). */
  unfenced: boolean;
  /** How the recovered server was held still for the final copy: frozen (then stopped), or stopped. */
  quiesce: { how: 'frozen' | 'stopped'; hook: boolean; mounts: string[] };
  /** Reprotect: whether the agent committed a point from the written-back state, and the RPO then. */
  protection: ReprotectOutcome;
  /** Way home (ECS): the reverse direction's app id at the gateway, its first and last points used. */
  wayHome?: { app: string; firstPoint: number; lastPoint: number };
}

/** How replication resumed after a failback, as its result and its message say. */
export interface ReprotectOutcome {
  protected: boolean;
  /** The first point committed after the switch back. */
  point?: number;
  /** Age of that point's data when the worker saw it. */
  rpoSeconds?: number;
  /** Blocks that point resent, against the blocks failback wrote (a MAC resync sends only those). */
  blocksResent?: number;
  /** One line: "protected again, RPO N s", or why not and what to do. */
  detail: string;
}

/** A finished `verify` job: every block of the point authenticated, decrypted and MAC-checked. */
export interface VerifyResult {
  opId: string;
  app: string;
  mode: 'verify';
  point: number;
  ok: boolean;
  volumes: Array<{ volume: string; blocks: number; digestOk: boolean }>;
  /** The damaged blocks (block -1: the volume as a whole), at most 100 listed. */
  problems: Array<{ volume: string; block: number; reason: string }>;
  problemCount: number;
  ms: number;
}

export type JobResult =
  | OperationResult
  | CleanupResult
  | FailbackResult
  | VerifyResult
  | PlanResult;

export type EventType = 'started' | 'step' | 'finished';

/** One entry of the `<prefix>events` stream. */
export interface OperationEvent {
  opId: string;
  app: string;
  job: JobName;
  type: EventType;
  /** For `step`: the step reached or in progress (a StepName, or a provider's own like 'disks'). */
  step?: string;
  /** For `step`: 0..1 within the step. */
  progress?: number;
  /** For `step`: one line a person reads instead of the step's label (it names what it did). */
  detail?: string;
  /** For `finished` with success (a verify that found damage is a success with `ok: false`). */
  result?: JobResult;
  /** For `finished` with failure: one line, with the remedy where there is one. */
  error?: { code: string; message: string };
  /** ms since epoch. */
  time: number;
}

/** The Redis keys of the contract, under one prefix. */
export function recoveryKeys(prefix = DEFAULT_PREFIX) {
  return {
    /** BullMQ's own prefix option. */
    bullPrefix: prefix.replace(/:$/, ''),
    events: `${prefix}events`,
    /** Per-app lock: JSON `AppLockHolder`, with an expiry the holder refreshes. */
    lock: (app: string) => `${prefix}lock:${app}`,
    /** Set by `dr cancel OP`; the worker checks it between steps and while a step runs. */
    cancel: (opId: string) => `${prefix}cancel:${opId}`,
  };
}
export type RecoveryKeys = ReturnType<typeof recoveryKeys>;

/** Who holds an app's lock, as a refusal explains it. */
export interface AppLockHolder {
  opId: string;
  job: JobName;
  requestedBy: string;
  /** ISO time the operation was requested. */
  since: string;
}

/** Job id of an operation's main job is its op id; its cleanup job is this. */
export const cleanupJobId = (opId: string) => `${opId}-cleanup`;
