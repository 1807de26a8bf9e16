/** A failover or a new drill ends the app's kept drill servers before it launches its own: two copies never run at once. */
import type { Job, JobType } from 'bullmq';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { Provider } from '../providers/provider.js';
import type { CleanupJob, EndedDrill, OperationEvent } from './recovery-contract.js';
import type { RecoveryDeps } from './recovery-deps.js';
import { cleanUpOperation } from './run-cleanup.js';

/** Cleanup jobs that have not finished: their drill's server may still run. */
const PENDING: JobType[] = ['delayed', 'waiting', 'prioritized', 'active'];
/** A drill in these states no longer runs: what it left is kept, or a leftover of a failed cleanup. */
const ENDED = new Set(['completed', 'failed']);

/** A drill of the app whose server may still run, with its cleanup jobs still to come. */
interface KeptDrill {
  opId: string;
  pending: Job<CleanupJob>[];
}

export interface EndKeptDrillsOptions {
  app: string;
  /** The failover or drill that ends them (never ends itself). */
  opId: string;
  provider: Provider;
  log: Logger;
  /** Records a step of that operation. */
  emit: (e: Pick<OperationEvent, 'type' | 'step' | 'progress' | 'detail'>) => Promise<unknown>;
}

/**
 * The app's drills whose servers may still run: those with a cleanup job still to run (kept for
 * `--keep`), and ended drills that still own resources at the provider (their cleanup failed,
 * or its job is gone). A drill still running cannot be among them: the operation holds the app.
 */
export async function keptDrills(
  deps: RecoveryDeps,
  { app, opId, provider, log }: Pick<EndKeptDrillsOptions, 'app' | 'opId' | 'provider' | 'log'>,
): Promise<KeptDrill[]> {
  const kept = new Map<string, Job<CleanupJob>[]>();
  const isDrill = async (op: string) => {
    const main = await deps.queue.getJob(op);
    return main?.name === 'drill' && (main.data as { app?: string }).app === app
      ? ENDED.has(await main.getState())
      : false;
  };
  for (const job of (await deps.queue.getJobs(PENDING)) as (Job<CleanupJob> | undefined)[]) {
    const op = job?.data.opId;
    if (job?.name !== 'cleanup' || job.data.app !== app || !op || op === opId) continue;
    if (!kept.has(op) && !(await isDrill(op))) continue;
    kept.set(op, [...(kept.get(op) ?? []), job]);
  }
  // The provider knows what still exists, whatever the queue says; an outage here must not stop
  // the failover (it is the emergency): what the queue showed is ended, the rest is logged.
  const leftovers = await provider.leftovers().catch((err: unknown) => {
    log.warn({ err: errorMessage(err) }, 'could not list leftover drill servers');
    return [] as string[];
  });
  for (const op of leftovers) {
    if (op !== opId && !kept.has(op) && (await isDrill(op))) kept.set(op, []);
  }
  return [...kept].map(([op, pending]) => ({ opId: op, pending }));
}

/**
 * Ends every kept drill server of the app before a failover or drill launches anything: runs its
 * cleanup now (the cleanup job's own code and events, marked as ended for this operation) and
 * removes its cleanup jobs still to come. One that cannot be ended is reported, not thrown: the operation
 * goes on, and its result says the drill server still runs and how to remove it.
 */
export async function endKeptDrills(
  deps: RecoveryDeps,
  o: EndKeptDrillsOptions,
): Promise<EndedDrill[]> {
  const out: EndedDrill[] = [];
  for (const drill of await keptDrills(deps, o)) {
    let ended: EndedDrill;
    try {
      const r = await cleanUpOperation(
        deps,
        { opId: drill.opId, app: o.app },
        { final: () => true, endedFor: o.opId },
      );
      for (const job of drill.pending) {
        // A worker took it meanwhile: it finds nothing left to remove.
        await job.remove().catch(() => undefined);
      }
      ended = {
        opId: drill.opId,
        ended: true,
        removed: r.removed,
        detail: `ended drill server of ${drill.opId} first`,
      };
    } catch (err) {
      ended = {
        opId: drill.opId,
        ended: false,
        removed: [],
        detail: `drill server ${drill.opId} is still running (ending it failed: ${errorMessage(err).split('\n')[0]}); remove it with \`dr cleanup ${drill.opId}\``,
      };
      o.log.error({ drill: drill.opId, err: errorMessage(err) }, 'kept drill server not ended');
    }
    out.push(ended);
    await o.emit({
      type: 'step',
      step: ended.ended ? 'drill-ended' : 'drill-not-ended',
      progress: 1,
      detail: ended.detail,
    });
  }
  return out;
}

/** A failure's message with, on its first line, the drill servers the failover could not end. */
export function withDrillsNote<T extends { message: string }>(info: T, drills?: EndedDrill[]): T {
  const left = (drills ?? []).filter((d) => !d.ended);
  if (left.length === 0) return info;
  const [first = '', ...rest] = info.message.split('\n');
  const note = left.map((d) => d.detail).join('; ');
  return { ...info, message: [`${first}; ${note}`, ...rest].join('\n') };
}
