import { type Job, UnrecoverableError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { errorMessage } from '../../core/errors.js';
import { emitEvent } from './operation-events.js';
import { planKeys } from './plan-contract.js';
import { cleanupJobId, type JobName, RECOVERY_QUEUE } from './recovery-contract.js';
import { defaultProvider, type RecoveryDeps } from './recovery-deps.js';
import { runCleanup } from './run-cleanup.js';
import { runFailback } from './run-failback.js';
import { runOperation } from './run-operation.js';
import { runPlan } from './run-plan.js';
import { runVerify } from './run-verify.js';

export interface RecoveryWorkerOptions {
  /** The worker's own connection (BullMQ blocks on it); `maxRetriesPerRequest: null`. */
  connection: Redis;
  deps: RecoveryDeps;
  /** Jobs run at once; 1 by default. */
  concurrency?: number;
  /**
   * How long a job stays owned by a worker that stops answering; after it, another worker
   * picks the job up and resumes it. 30 s by default.
   */
  lockDurationMs?: number;
}

/** A BullMQ worker on the recovery queue, running every job of the contract. */
export function createRecoveryWorker({
  connection,
  deps,
  concurrency = 1,
  lockDurationMs = 30_000,
}: RecoveryWorkerOptions): Worker {
  const drill = runOperation('drill', deps);
  const failover = runOperation('failover', deps);
  const failback = runFailback(deps);
  const verify = runVerify(deps);
  const cleanup = runCleanup(deps);
  const plan = runPlan(deps);
  const worker = new Worker(
    RECOVERY_QUEUE,
    async (job: Job, token?: string, signal?: AbortSignal) => {
      switch (job.name as JobName) {
        case 'drill':
          return drill(job, token, signal);
        case 'failover':
          return failover(job, token, signal);
        case 'failback':
          return failback(job, token, signal);
        case 'verify':
          return verify(job, token, signal);
        case 'cleanup':
          return cleanup(job, token, signal);
        case 'plan':
          return plan(job, token);
        default: {
          const why = `unknown job ${job.name}: this worker is older than the one that queued it`;
          const data = job.data as { opId?: string; app?: string };
          if (data.opId && data.app) {
            await emitEvent(deps.redis, deps.keys.events, {
              opId: data.opId,
              app: data.app,
              job: job.name as JobName,
              type: 'finished',
              error: { code: 'not_implemented', message: why },
            }).catch((err: unknown) =>
              deps.log.warn({ err: errorMessage(err) }, 'event not recorded'),
            );
            await deps.redis.eval(
              "local v = redis.call('GET', KEYS[1]) if v and string.find(v, ARGV[1], 1, true) then redis.call('DEL', KEYS[1]) end return 0",
              1,
              deps.keys.lock(data.app),
              `"opId":"${data.opId}"`,
            );
          }
          throw new UnrecoverableError(why);
        }
      }
    },
    {
      connection,
      prefix: deps.keys.bullPrefix,
      concurrency,
      lockDuration: lockDurationMs,
      stalledInterval: Math.min(30_000, lockDurationMs),
      maxStalledCount: 2,
    },
  );
  // A plan waits (delayed) between passes. When one of its apps' operations ends, the plan is
  // woken at once rather than left to its delay: the pass that sees the end need not wait for
  // the delayed job's timer, which a busy or idle worker may serve late.
  const keys = planKeys(`${deps.keys.bullPrefix}:`);
  const wakePlan = async (job: Job | undefined) => {
    const opId = (job?.data as { opId?: string } | undefined)?.opId;
    if (!opId || job?.name === 'plan') return;
    const planOp = await deps.redis.get(keys.parent(opId));
    if (!planOp) return;
    const planJob = await deps.queue.getJob(planOp);
    if (planJob && (await planJob.getState()) === 'delayed') await planJob.promote();
  };
  const wake = (job: Job | undefined) =>
    void wakePlan(job).catch((err: unknown) =>
      deps.log.debug({ err: errorMessage(err) }, 'plan not woken; it runs at its next pass'),
    );
  worker.on('completed', wake);
  worker.on('failed', wake);
  return worker;
}

/**
 * Removes what crashed operations left under this worker's provider, where the queue shows they
 * are disposable: the operation failed, or it is a drill whose cleanup job is gone or failed.
 * An op id the queue no longer knows is left alone (it may be a failed-over server in use).
 */
export async function sweepLeftovers(deps: RecoveryDeps): Promise<string[]> {
  const config = await deps.config();
  const provider = (deps.provider ?? defaultProvider)(config, undefined, deps.log);
  const swept: string[] = [];
  for (const opId of await provider.leftovers()) {
    const main = await deps.queue.getJob(opId);
    if (!main) continue;
    const state = await main.getState();
    const cleanup = await deps.queue.getJob(cleanupJobId(opId));
    const cleanupState = await cleanup?.getState();
    const disposable =
      state === 'failed' ||
      (state === 'completed' &&
        main.name === 'drill' &&
        (cleanupState === undefined || cleanupState === 'failed' || cleanupState === 'unknown'));
    if (!disposable) continue;
    await provider.destroy(opId, deps.log);
    swept.push(opId);
  }
  return swept;
}
