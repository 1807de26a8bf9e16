/** Rolling a plan back: its running operations stopped, then what each started removed, last group first. */
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { unfenceSource } from '../recovery/fence-source.js';
import type { PlanJob, PlanRun } from './plan-contract.js';
import { allApps } from './plan-run-state.js';
import type { RecoveryClient } from './recovery-client.js';
import { cleanupJobId } from './recovery-contract.js';
import type { RecoveryDeps } from './recovery-deps.js';
import { removeOperation } from './run-cleanup.js';

const UNFINISHED = new Set(['active', 'waiting', 'delayed', 'prioritized', 'waiting-children']);

/**
 * One pass of a rollback; true when it is over. First every operation of the plan that has not
 * ended is cancelled (a queued one is removed, a running one stops at its next check and cleans up
 * after itself), and the rollback waits for them. Then, last group first, each app's operations
 * are removed as `dr cleanup` removes them (server, volumes, mounts, directory); then, first group
 * first, a failover's app gets its replication back (the failed-over mark lifted) and its source
 * unfenced where the plan fenced it. Failbacks cannot be undone: the apps already home stay home.
 */
export async function rollbackPlan(
  deps: RecoveryDeps,
  client: RecoveryClient,
  d: PlanJob,
  run: PlanRun,
  log: Logger,
): Promise<boolean> {
  run.rollback ??= { by: 'unknown', lines: [] };
  const rollback = run.rollback;
  let busy = false;
  for (const a of allApps(run))
    for (const op of a.ops) {
      const job = await deps.queue.getJob(op);
      if (!job || !UNFINISHED.has(await job.getState())) continue;
      await client.cancel(op, `plan:${d.opId}`).catch((err: unknown) => {
        log.warn({ op, err: errorMessage(err) }, 'cancel during rollback failed; waiting for it');
      });
      if (UNFINISHED.has(await job.getState().catch(() => 'unknown'))) busy = true;
    }
  if (busy) return false;

  const config = await deps.config();
  const gateway = d.verb === 'failover' ? deps.gateway(config) : undefined;
  try {
    const undone = new Map<string, string[]>();
    // The DR side first, last group first: the web tier stops before the database it writes to.
    for (const a of [...allApps(run)].reverse()) {
      if (a.state === 'rolled-back') continue;
      if (d.verb === 'failback') {
        if (a.state === 'healthy') rollback.lines.push(`${a.app}: failed back; it stays home`);
        continue;
      }
      if (a.ops.length === 0 && !a.fence) continue; // never started: nothing to undo
      const lines: string[] = [];
      for (const op of a.ops) {
        await (await deps.queue.getJob(cleanupJobId(op)))?.remove().catch(() => undefined); // ran or gone already
        const removed = await removeOperation(deps, op, a.app, log);
        lines.push(...removed.map((r) => `removed ${r}`));
      }
      undone.set(a.app, lines);
    }
    // Then the sources, first group first: the database is back before the tiers that need it.
    for (const a of allApps(run)) {
      const lines = undone.get(a.app);
      if (!lines) continue;
      if (gateway && a.fence) {
        await gateway.setProtection(a.app, { state: 'protected' });
        lines.push('replication resumed (the failed-over mark lifted)');
        const appConfig = config.apps[a.app];
        if (a.fence.fenced && appConfig)
          try {
            const u = await unfenceSource(a.app, a.ops[0] ?? d.opId, appConfig, log);
            lines.push(u.ran ? 'source unfenced' : 'no unfence command: start the source by hand');
          } catch (err) {
            lines.push(`NOT unfenced: ${errorMessage(err)}`);
          }
      }
      a.undone = lines;
      a.state = 'rolled-back';
    }
    for (const a of [...allApps(run)].reverse()) {
      const lines = undone.get(a.app);
      if (lines) rollback.lines.push(`${a.app}: ${lines.join('; ') || 'nothing was left'}`);
    }
  } finally {
    gateway?.close();
  }
  run.phase = 'rolled-back';
  run.endedAt = Date.now();
  rollback.endedAt = run.endedAt;
  return true;
}
