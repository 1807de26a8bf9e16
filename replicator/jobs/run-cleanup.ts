/** Cleaning an operation up: its server, its served volumes and its recovery directory. */
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type Processor, UnrecoverableError } from 'bullmq';
import { errorMessage, isDrError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { releaseInstant } from '../recovery/instant-point.js';
import { emitEvent } from './operation-events.js';
import { type CleanupJob, type CleanupResult, OP_ID } from './recovery-contract.js';
import { defaultProvider, type RecoveryDeps, recoveryDir } from './recovery-deps.js';

/**
 * Removes everything an operation made: its server (through the provider, by op id) and its
 * recovery directory. Idempotent, so a repeated or retried cleanup is harmless.
 */
export async function removeOperation(
  deps: RecoveryDeps,
  opId: string,
  app: string,
  log: Logger,
): Promise<string[]> {
  const config = await deps.config();
  const provider = (deps.provider ?? defaultProvider)(config, config.apps[app], log);
  const dir = join(recoveryDir(config), opId);
  // Volumes served on demand go first: the server loses its disks, and the directory holds no mount.
  await releaseInstant(opId, dir);
  const removed = await provider.destroy(opId, log);
  const left = await stat(dir).then(
    () => true,
    () => false, // already gone
  );
  if (left) {
    await rm(dir, { recursive: true, force: true });
    removed.push(dir);
  }
  await deps.redis.del(deps.keys.cancel(opId));
  return removed;
}

/**
 * Cleans an operation up as the `cleanup` job does, with its events (`job: 'cleanup'` under the
 * operation's id, so followers, history and the audit log see it): the job itself, `dr cleanup`,
 * and a failover that ends a kept drill server before it launches (`endedFor`). A failure is
 * announced as the cleanup's end only when `final`, and thrown.
 */
export async function cleanUpOperation(
  deps: RecoveryDeps,
  { opId, app }: Pick<CleanupJob, 'opId' | 'app'>,
  { final, endedFor }: { final: () => boolean; endedFor?: string },
): Promise<CleanupResult> {
  const log = deps.log.child({ opId, app, job: 'cleanup' });
  const emit = (e: Omit<Parameters<typeof emitEvent>[2], 'opId' | 'app' | 'job'>) =>
    emitEvent(deps.redis, deps.keys.events, { opId, app, job: 'cleanup', ...e }).catch(
      (err: unknown) => log.warn({ err: errorMessage(err) }, 'event not recorded'),
    );
  await emit({ type: 'started' });
  try {
    const removed = await removeOperation(deps, opId, app, log);
    const result: CleanupResult = { opId, removed, ...(endedFor ? { endedFor } : {}) };
    log.info({ removed, ...(endedFor ? { endedFor } : {}) }, 'operation cleaned up');
    await emit({ type: 'finished', result });
    return result;
  } catch (err) {
    if (final()) {
      await emit({
        type: 'finished',
        error: {
          code: isDrError(err) ? err.code : 'internal',
          message: `cleanup of ${opId} failed: ${errorMessage(err)}`,
        },
      });
    }
    throw err;
  }
}

/** The `cleanup` job: a drill's delayed cleanup, or `dr cleanup OP` at once. */
export function runCleanup(deps: RecoveryDeps): Processor<CleanupJob, CleanupResult> {
  return async (job) => {
    const { opId } = job.data;
    if (!OP_ID.test(opId)) throw new UnrecoverableError(`job ${job.id}: ${opId} is not an op id`);
    return cleanUpOperation(deps, job.data, {
      final: () => job.attemptsMade + 1 >= (job.opts.attempts ?? 1),
    });
  };
}
