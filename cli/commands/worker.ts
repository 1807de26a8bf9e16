import { randomUUID } from 'node:crypto';
import type { Command } from 'commander';
import { readConfig } from '../../core/config.js';
import { errorMessage } from '../../core/errors.js';
import { reportRedisError, watchRedis } from '../../core/redis-outage.js';
import { settleWithin } from '../../core/settle-within.js';
import { parseDuration } from '../../core/units.js';
import { RECOVERY_QUEUE } from '../../replicator/jobs/recovery-contract.js';
import { gatewayClient, loadKek } from '../connect.js';
import { contextOf, type ExitState, runAction, usageError } from '../context.js';
import { openRedis, redisPrefix } from '../recovery-connect.js';
import { stopSignal } from '../stop-signal.js';

export function registerWorker(program: Command, exit: ExitState): void {
  program
    .command('worker')
    .description(
      'run recovery jobs (drill, failover, failback, verify, cleanup) from the Redis queue',
    )
    .option('--concurrency <n>', 'jobs run at once', '1')
    .option(
      '--lock-duration <duration>',
      'how long a job stays with a worker that stopped answering before another resumes it',
      '30s',
    )
    .action(async (opts: { concurrency: string; lockDuration: string }, cmd: Command) =>
      runAction(exit, false, async () => {
        const ctx = contextOf(cmd);
        const concurrency = Number(opts.concurrency);
        if (!Number.isSafeInteger(concurrency) || concurrency < 1 || concurrency > 64) {
          throw usageError(
            `--concurrency ${opts.concurrency} is not a number from 1 to 64`,
            'pass it like 2',
          );
        }
        const lockDurationMs = parseDuration(opts.lockDuration);
        if (lockDurationMs === undefined || lockDurationMs < 1000) {
          throw usageError(
            `--lock-duration ${opts.lockDuration} is not a duration of at least 1s`,
            'pass it like 30s',
          );
        }
        await ctx.config(); // a missing or bad home fails here, before any job is taken
        const stopping = stopSignal({
          part: 'dr worker',
          abandons:
            'a running job stays locked until --lock-duration runs out, then another worker resumes it',
          env: ctx.env,
        });
        try {
          const prefix = redisPrefix(ctx.env);
          const redis = await openRedis(ctx.env, 'lifeboat-worker-events');
          const connection = await openRedis(ctx.env, 'lifeboat-worker');
          const log = ctx.log.child({ part: 'worker' });
          for (const r of [redis, connection]) watchRedis(r, log, 'worker');
          // bullmq loads only here, not for every `dr` command.
          const { RecoveryClient } = await import('../../replicator/jobs/recovery-client.js');
          const { createRecoveryWorker, sweepLeftovers } = await import(
            '../../replicator/jobs/recovery-worker.js'
          );
          const client = new RecoveryClient(redis, prefix);
          const deps = {
            redis,
            keys: client.keys,
            queue: client.queue,
            config: () => readConfig(ctx.home, ctx.env),
            gateway: gatewayClient,
            kek: loadKek,
            log,
          };
          const worker = createRecoveryWorker({ connection, deps, concurrency, lockDurationMs });
          worker.on('failed', (job, err) =>
            log.warn({ opId: job?.data?.opId, job: job?.name, err: err.message }, 'job failed'),
          );
          worker.on('error', (err) => reportRedisError(log, err, 'worker'));
          // Without a listener, BullMQ prints a queue's connection errors raw on stderr.
          client.queue.on('error', (err) => reportRedisError(log, err, 'worker queue'));
          // Job outcomes reach the audit log while this worker runs, with or without an engine.
          const { AuditLog } = await import('../../engine/audit-log.js');
          const { startOperationAudit } = await import('../../engine/operation-audit.js');
          const auditConn = await openRedis(ctx.env, 'lifeboat-worker-audit');
          watchRedis(auditConn, log, 'worker audit');
          const audit = startOperationAudit({
            conn: auditConn,
            audit: new AuditLog(redis, prefix),
            prefix,
            consumer: `worker-${process.pid}-${randomUUID().slice(0, 8)}`,
            log,
          });
          await worker.waitUntilReady();
          const swept = await sweepLeftovers(deps).catch((err: unknown) => {
            log.warn(
              { err: errorMessage(err) },
              'leftover sweep failed; the next start tries again',
            );
            return [];
          });
          if (swept.length > 0) log.info({ swept }, 'removed leftovers of ended operations');
          ctx.out(
            `worker ready: queue ${RECOVERY_QUEUE}, prefix ${prefix}, concurrency ${concurrency}`,
          );
          await stopping.requested;
          // With Redis away, a graceful close waits for it forever: the running jobs cannot record
          // anything anyway, so they are left to stall and another worker resumes them.
          // Redis answers within 2 s, or it is away (a status alone lags a crash).
          const redisUp = await settleWithin(Promise.all([connection.ping(), redis.ping()]), 2000);
          if (redisUp) log.info('stopping after the running jobs (signal again to stop now)');
          else
            log.warn(
              'Redis is unreachable: stopping now; running jobs are left for another worker',
            );
          stopping.onSecond(() => {
            log.warn('stopping now');
            void worker.close(true);
          });
          await worker.close(!redisUp);
          await audit.stop(); // events not audited yet stay in the group for the next engine or worker
          await client.close();
          redis.disconnect();
          connection.disconnect();
          return 0;
        } finally {
          stopping.dispose();
        }
      }),
    );
}
