import type { Job } from 'bullmq';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { AppLock } from './app-lock.js';
import { cancelled, errorInfo, FinalError, isJobLost, isPermanent } from './job-errors.js';
import { emitEvent } from './operation-events.js';
import type { JobName, OperationEvent, OperationPayload } from './recovery-contract.js';
import type { RecoveryDeps } from './recovery-deps.js';

type EventBody = Omit<OperationEvent, 'time' | 'opId' | 'app' | 'job'>;
type JobBase = Pick<OperationPayload, 'opId' | 'app' | 'requestedBy'>;

/**
 * What every recovery job shares while it runs: its logger, its events, and the abort signal
 * that `dr cancel`, a lost lock or BullMQ (a worker closing) trips. One per job run.
 */
export class JobScaffold {
  readonly opId: string;
  readonly app: string;
  readonly log: Logger;
  readonly controller = new AbortController();
  readonly signal: AbortSignal;
  private readonly timers: NodeJS.Timeout[] = [];

  constructor(
    private readonly deps: RecoveryDeps,
    private readonly job: Job<JobBase>,
    private readonly name: JobName,
    private readonly bullSignal: AbortSignal | undefined,
  ) {
    this.opId = job.data.opId;
    this.app = job.data.app;
    this.log = deps.log.child({ opId: this.opId, app: this.app, job: name });
    this.signal = bullSignal
      ? AbortSignal.any([bullSignal, this.controller.signal])
      : this.controller.signal;
  }

  /** Records an event of this job; a Redis failure is logged, never thrown. */
  readonly emit = (e: EventBody): Promise<unknown> =>
    emitEvent(this.deps.redis, this.deps.keys.events, {
      opId: this.opId,
      app: this.app,
      job: this.name,
      ...e,
    }).catch((err: unknown) => this.log.warn({ err: errorMessage(err) }, 'event not recorded'));

  /**
   * Polls for `dr cancel` and aborts the signal when it is asked for (and `honour()` agrees:
   * a job may stop honouring it past a point of no return).
   */
  watchCancel(honour: () => boolean = () => true): void {
    const { redis, keys } = this.deps;
    this.timers.push(
      setInterval(() => {
        if (!honour()) return;
        redis.exists(keys.cancel(this.opId)).then(
          (n) => {
            if (n > 0 && honour()) this.controller.abort(cancelled(this.opId));
          },
          (err: unknown) => this.log.warn({ err: errorMessage(err) }, 'cancel check failed'),
        );
      }, this.deps.cancelPollMs ?? 500),
    );
  }

  /** Looks for `dr cancel` now (if `honour()` agrees) and throws if the job is aborted. */
  async checkCancel(honour: () => boolean = () => true): Promise<void> {
    if (honour() && (await this.deps.redis.exists(this.deps.keys.cancel(this.opId))) > 0)
      this.controller.abort(cancelled(this.opId));
    this.signal.throwIfAborted();
  }

  /**
   * Takes the app lock and keeps it refreshed; a lock lost to another holder aborts the job.
   * A conflict is final: it emits `finished` and throws a FinalError `operation_conflict`.
   */
  async takeLock(): Promise<AppLock> {
    const { opId, app, job } = this;
    const lock = new AppLock(this.deps.redis, this.deps.keys.lock(app), app);
    const ttl = this.deps.lockTtlMs ?? 60_000;
    try {
      await lock.take(
        {
          opId,
          job: this.name,
          requestedBy: job.data.requestedBy,
          since: new Date(job.timestamp).toISOString(),
        },
        ttl,
      );
    } catch (err) {
      // Not ours: nothing of this operation exists yet, so there is nothing to clean.
      await this.emit({ type: 'finished', error: errorInfo(err) });
      throw new FinalError(errorMessage(err), 'operation_conflict');
    }
    this.timers.push(
      setInterval(() => {
        lock.refresh(opId, ttl).then(
          (ours) => {
            if (!ours) this.controller.abort(new Error(`${opId} lost the lock of ${app}`));
          },
          (err: unknown) => this.log.warn({ err: errorMessage(err) }, 'lock refresh failed'),
        );
      }, ttl / 3),
    );
    return lock;
  }

  /** Releases the lock (if any) and emits `finished`: the app is free before anyone hears it. */
  async finish(lock: AppLock | undefined, e: Pick<OperationEvent, 'result' | 'error'>) {
    this.stop();
    await lock
      ?.release(this.opId)
      .catch((err: unknown) =>
        this.log.warn({ err: errorMessage(err) }, 'lock not released; it expires by itself'),
      );
    await this.emit({ type: 'finished', ...e });
  }

  /** Stops the lock refresh and the cancel poll. */
  stop(): void {
    for (const t of this.timers) clearInterval(t);
  }

  /** Whether the job was cancelled (`dr cancel`, a lost lock, or BullMQ closing the worker). */
  get wasCancelled(): boolean {
    return this.controller.signal.aborted || this.bullSignal?.aborted === true;
  }

  /**
   * Why a job that threw failed, and whether it ends here: cancelled, a permanent error, a job
   * record gone from Redis (nothing can retry it) or its last attempt. Otherwise it emits
   * `retrying` and the caller rethrows for BullMQ to retry.
   */
  async failure(err: unknown): Promise<{ why: unknown; final: boolean }> {
    const wasCancelled = this.wasCancelled;
    const why = wasCancelled ? (this.controller.signal.reason ?? cancelled(this.opId)) : err;
    const final =
      wasCancelled ||
      isPermanent(why) ||
      isJobLost(why) ||
      this.job.attemptsMade + 1 >= (this.job.opts.attempts ?? 1);
    if (!final) {
      await this.emit({ type: 'step', step: 'retrying', progress: 0, error: errorInfo(err) });
    }
    return { why, final };
  }
}

/**
 * The steps a job recorded in its data, so a retried job resumes after the last one done:
 * `startedAt` is kept from the first run and `resumes` counts the runs after it.
 */
export async function recordedSteps<
  S extends { startedAt?: number; resumes?: number },
  D extends { steps?: S },
>(
  job: Job<D>,
): Promise<{ steps: S & { startedAt: number }; resumed: boolean; save: () => Promise<void> }> {
  const steps = { ...job.data.steps } as S;
  const resumed = steps.startedAt !== undefined;
  steps.startedAt ??= Date.now();
  if (resumed) steps.resumes = (steps.resumes ?? 0) + 1;
  const save = () => job.updateData({ ...job.data, steps });
  await save();
  return { steps: steps as S & { startedAt: number }, resumed, save };
}
