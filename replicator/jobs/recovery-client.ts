import { randomBytes } from 'node:crypto';
import { type Job, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { APP_NAME } from '../../core/config.js';
import { DrError } from '../../core/errors.js';
import { AppLock } from './app-lock.js';
import { emitEvent, followOperation, lastEventId } from './operation-events.js';
import { type PlanJob, type PlanPosition, type PlanSignal, planKeys } from './plan-contract.js';
import {
  type CleanupJob,
  cleanupJobId,
  DEFAULT_PREFIX,
  type JobName,
  OP_ID,
  type OperationEvent,
  type OperationPayload,
  RECOVERY_QUEUE,
  type RecoveryKeys,
  recoveryKeys,
} from './recovery-contract.js';

/** Until a worker takes it over, a queued operation holds its app's lock this long. */
const QUEUED_LOCK_MS = 10 * 60_000;
/** Operations that change what runs for an app: one at a time per app. */
const CONFLICTING: ReadonlySet<JobName> = new Set(['drill', 'failover', 'failback']);

export type OperationName = Exclude<JobName, 'cleanup' | 'plan'>;

export const newOpId = () =>
  `op-${Date.now().toString(36)}${randomBytes(4).toString('hex')}`.toLowerCase();

export interface Enqueued {
  opId: string;
  job: JobName;
  app: string;
  /** The stream id to follow the operation's events from. */
  after: string;
}

export type CancelOutcome = 'removed' | 'signalled' | 'finished';

/** The caller's side of the recovery contract: enqueue, cancel, clean up, follow. */
export class RecoveryClient {
  readonly keys: RecoveryKeys;
  readonly queue: Queue;

  constructor(
    private readonly redis: Redis,
    prefix = DEFAULT_PREFIX,
  ) {
    this.keys = recoveryKeys(prefix);
    this.queue = new Queue(RECOVERY_QUEUE, { connection: redis, prefix: this.keys.bullPrefix });
  }

  async close(): Promise<void> {
    await this.queue.close();
  }

  /**
   * Queues an operation. A drill, failover or failback takes the app's lock here, so a second
   * conflicting request is refused at once with who holds it.
   */
  async enqueue(
    job: OperationName,
    payload: Omit<OperationPayload, 'opId'> & { opId?: string },
  ): Promise<Enqueued> {
    if (!APP_NAME.test(payload.app)) {
      throw new DrError(`${JSON.stringify(payload.app)} is not an app name`, {
        code: 'app_unknown',
        subject: payload.app,
        remedy: 'use the name from `dr app list`',
      });
    }
    const opId = payload.opId ?? newOpId();
    const data: OperationPayload = { ...payload, opId };
    const lock = new AppLock(this.redis, this.keys.lock(data.app), data.app);
    if (CONFLICTING.has(job)) {
      await lock.take(
        { opId, job, requestedBy: data.requestedBy, since: new Date().toISOString() },
        QUEUED_LOCK_MS,
      );
    }
    const after = await lastEventId(this.redis, this.keys.events);
    try {
      await this.queue.add(job, data, {
        jobId: opId,
        attempts: 3,
        backoff: { type: 'exponential', delay: 2000 },
        removeOnComplete: { age: 30 * 86_400 },
        removeOnFail: { age: 30 * 86_400 },
      });
    } catch (err) {
      await lock.release(opId);
      throw err;
    }
    return { opId, job, app: data.app, after };
  }

  /**
   * Queues a plan run (one job; it queues its apps' own operations as it goes). The job id is
   * the op id, so queuing the same run twice leaves one job.
   */
  async enqueuePlan(data: PlanJob): Promise<Enqueued> {
    const after = await lastEventId(this.redis, this.keys.events);
    await this.queue.add('plan', data, {
      jobId: data.opId,
      attempts: 5,
      backoff: { type: 'exponential', delay: 2000 },
      removeOnComplete: { age: 30 * 86_400 },
      removeOnFail: { age: 30 * 86_400 },
    });
    return { opId: data.opId, job: 'plan', app: data.plan, after };
  }

  /** The plan run of `opId` as recorded now, or undefined when no plan runs under that id. */
  async planRun(opId: string): Promise<PlanJob | undefined> {
    const job = OP_ID.test(opId) ? await this.queue.getJob(opId) : undefined;
    return job?.name === 'plan' ? (job.data as PlanJob) : undefined;
  }

  /**
   * The plan run of `opId` and, when its job failed before it could run (another run of the plan
   * held it, a bad record), why; undefined when no plan runs under that id.
   */
  async planRunOutcome(opId: string): Promise<{ job: PlanJob; failed?: string } | undefined> {
    const job = OP_ID.test(opId) ? await this.queue.getJob(opId) : undefined;
    if (job?.name !== 'plan') return undefined;
    const failed = (await job.isFailed()) ? job.failedReason || 'failed' : undefined;
    return { job: job.data as PlanJob, ...(failed ? { failed } : {}) };
  }

  /**
   * Hands a person's control to a plan run: stored for the run to take (one at a time), and the
   * waiting run woken at once. False when another control waits to be taken.
   */
  async signalPlan(opId: string, signal: PlanSignal): Promise<boolean> {
    const keys = planKeys(this.keys.bullPrefix + ':');
    // A manual step is continued once: the first press claims it for good. The stored control
    // alone cannot say so, since the run takes (deletes) it at once and a second press after that
    // would be stored again.
    const claim = signal.action === 'continue' ? keys.continued(opId, signal.at) : undefined;
    if (claim && (await this.redis.set(claim, signal.by, 'EX', 86_400, 'NX')) !== 'OK')
      return false;
    const key = keys.signal(opId);
    const stored = await this.redis.set(key, JSON.stringify(signal), 'EX', 86_400, 'NX');
    if (stored !== 'OK') {
      if (claim) await this.redis.del(claim);
      return false;
    }
    const job = await this.queue.getJob(opId);
    if (job && (await job.getState()) === 'delayed') await job.promote().catch(() => undefined); // picked up meanwhile: it takes the control now
    return true;
  }

  /** Who continued the manual step at `at`, once someone has. */
  async continuedBy(opId: string, at: PlanPosition): Promise<string | undefined> {
    return (
      (await this.redis.get(planKeys(this.keys.bullPrefix + ':').continued(opId, at))) ?? undefined
    );
  }

  /** The control waiting to be taken by a plan run, if any. */
  async pendingSignal(opId: string): Promise<PlanSignal | undefined> {
    const raw = await this.redis.get(planKeys(this.keys.bullPrefix + ':').signal(opId));
    return raw ? (JSON.parse(raw) as PlanSignal) : undefined;
  }

  /**
   * Stops an operation: removed from the queue if it has not started, else flagged in Redis for
   * its worker, which stops at its next check and cleans up.
   */
  async cancel(opId: string, requestedBy: string): Promise<{ outcome: CancelOutcome; job: Job }> {
    const job = await this.operation(opId);
    const state = await job.getState();
    if (state === 'completed' || state === 'failed') return { outcome: 'finished', job };
    await this.redis.set(this.keys.cancel(opId), requestedBy, 'EX', 86_400);
    if (job.name === 'plan') {
      // A plan run is never just removed: what it started must go too, so it rolls itself back.
      if (state === 'delayed') await job.promote().catch(() => undefined); // taken meanwhile
      return { outcome: 'signalled', job };
    }
    if (state !== 'active') {
      const removed = await job.remove().then(
        () => true,
        () => false, // a worker took it meanwhile: the flag stops it
      );
      if (removed) {
        const app = (job.data as OperationPayload).app;
        await new AppLock(this.redis, this.keys.lock(app), app).release(opId);
        await this.redis.del(this.keys.cancel(opId));
        await emitEvent(this.redis, this.keys.events, {
          opId,
          app,
          job: job.name as JobName,
          type: 'finished',
          error: {
            code: 'operation_cancelled',
            message: `${opId} was cancelled before it started`,
          },
        });
        return { outcome: 'removed', job };
      }
    }
    return { outcome: 'signalled', job };
  }

  /** Cleans up a finished operation now: promotes its delayed cleanup, or queues a new one. */
  async cleanup(opId: string, requestedBy: string): Promise<Enqueued> {
    const main = await this.operation(opId);
    const app = (main.data as OperationPayload).app;
    if ((await main.getState()) === 'active') {
      throw new DrError(`${opId} is still running`, {
        code: 'operation_conflict',
        subject: opId,
        remedy: `stop it with \`dr cancel ${opId}\`; a cancelled operation cleans up after itself`,
      });
    }
    const after = await lastEventId(this.redis, this.keys.events);
    const delayed = await this.queue.getJob(cleanupJobId(opId));
    if (delayed && (await delayed.getState()) === 'delayed') {
      await delayed.promote();
      return { opId, job: 'cleanup', app, after };
    }
    const data: CleanupJob = { opId, app, requestedBy };
    await this.queue.add('cleanup', data, {
      jobId: `${cleanupJobId(opId)}-${Date.now().toString(36)}`,
      attempts: 5,
      backoff: { type: 'exponential', delay: 2000 },
      removeOnComplete: { age: 7 * 86_400 },
    });
    return { opId, job: 'cleanup', app, after };
  }

  /**
   * Follows an operation's events to its `finished` one. A job that ended without one (it
   * stalled too often, or was removed) is reported from its BullMQ state instead.
   */
  follow(e: Enqueued, signal?: AbortSignal): AsyncGenerator<OperationEvent> {
    const ended = async (): Promise<OperationEvent | undefined> => {
      if (e.job === 'cleanup') return undefined;
      const job = await this.queue.getJob(e.opId);
      const base = { opId: e.opId, app: e.app, job: e.job, type: 'finished' as const };
      if (!job) {
        return {
          ...base,
          time: Date.now(),
          error: { code: 'operation_unknown', message: `${e.opId} is no longer queued` },
        };
      }
      const state = await job.getState();
      if (state !== 'failed') return undefined;
      // Give the worker's own `finished` event a moment: it is written just before the job fails.
      const last = await this.redis.xrevrange(this.keys.events, '+', e.after, 'COUNT', 50);
      if (last.some(([, f]) => f.includes(e.opId) && f.includes('finished'))) return undefined;
      return {
        ...base,
        time: Date.now(),
        error: { code: 'operation_failed', message: job.failedReason },
      };
    };
    return followOperation(this.redis, this.keys.events, e.opId, {
      after: e.after,
      job: e.job,
      ...(signal ? { signal } : {}),
      idle: ended,
    });
  }

  private async operation(opId: string): Promise<Job> {
    const job = OP_ID.test(opId) ? await this.queue.getJob(opId) : undefined;
    if (!job) {
      throw new DrError(`no operation ${opId}`, {
        code: 'operation_unknown',
        subject: opId,
        remedy: 'use the op id `dr drill` or `dr failover` printed (like op-m3x1a2b3c4d5e6)',
      });
    }
    return job;
  }
}
