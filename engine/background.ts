import { randomUUID } from 'node:crypto';
import { errorMessage } from '../core/errors.js';
import { connectRedis } from '../core/redis.js';
import { watchRedis } from '../core/redis-outage.js';
import { CardRefresher } from './card-refresher.js';
import type { EngineContext } from './engine-context.js';
import { startOperationAudit } from './operation-audit.js';
import { startOperationNotices } from './operation-notices.js';
import type { PolicySet } from './policy-set.js';
import { RpoMonitor } from './rpo-monitor.js';
import { runScheduled, type ScheduledCommand, syncSchedules } from './schedules.js';

/** The engine's duties besides answering commands, started by `Engine.start()`. */
export async function startBackground(
  ctx: EngineContext,
  {
    redisUrl,
    monitorEveryMs = 5000,
    cardsEveryMs = 15_000,
  }: { redisUrl: string; monitorEveryMs?: number; cardsEveryMs?: number },
) {
  const conn = connectRedis(redisUrl, 'lifeboat-engine-events');
  watchRedis(conn, ctx.log, 'engine events');
  const events = startOperationNotices(ctx, conn);
  const auditConn = connectRedis(redisUrl, 'lifeboat-engine-audit');
  watchRedis(auditConn, ctx.log, 'engine audit');
  const audit = startOperationAudit({
    conn: auditConn,
    audit: ctx.audit,
    prefix: ctx.prefix,
    consumer: `engine-${process.pid}-${randomUUID().slice(0, 8)}`,
    log: ctx.log,
  });
  const monitor = new RpoMonitor(ctx, monitorEveryMs);
  monitor.start();
  const cards = new CardRefresher(ctx, cardsEveryMs);
  cards.start();
  return {
    monitor,
    /** Schedulers follow the policy files. */
    policiesChanged: async (set: PolicySet) => {
      try {
        await syncSchedules(ctx, set);
      } catch (err) {
        ctx.log.warn(
          { err: errorMessage(err) },
          'cannot update the job schedulers; they follow at the next reload',
        );
      }
    },
    runScheduled: (data: unknown, jobId: string) =>
      runScheduled(ctx, data as ScheduledCommand, jobId),
    stop: async () => {
      await monitor.stop();
      await cards.stop();
      await events.stop();
      await audit.stop();
    },
  };
}
