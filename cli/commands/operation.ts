import type { Command } from 'commander';
import { checkName } from '../../core/names.js';
import { contextOf, type ExitState, printJson, runAction } from '../context.js';
import { localRequester, openRedis, redisPrefix } from '../recovery-connect.js';
import { verbCommand } from '../verb-command.js';
import { waitAndReport } from './recovery.js';

/** `dr cancel OP` and `dr cleanup OP`: act on an operation by its id. */
export function registerOperation(program: Command, exit: ExitState): void {
  verbCommand(program, 'cancel').action(
    async (opId: string, opts: { json?: boolean }, c: Command) =>
      runAction(exit, opts.json, async () => {
        checkName('operation', opId, 'OP');
        const ctx = contextOf(c);
        const redis = await openRedis(ctx.env, 'lifeboat-dr-cancel');
        const { RecoveryClient } = await import('../../replicator/jobs/recovery-client.js'); // bullmq loads only here
        const client = new RecoveryClient(redis, redisPrefix(ctx.env));
        try {
          const { outcome, job } = await client.cancel(opId, localRequester());
          if (opts.json) {
            printJson({ opId, job: job.name, outcome });
            return 0;
          }
          ctx.out(
            outcome === 'removed'
              ? `${opId}: removed from the queue before it started`
              : outcome === 'signalled'
                ? `${opId}: cancel requested; its worker stops at the next check and cleans up`
                : `${opId}: already finished; remove what it left with \`dr cleanup ${opId}\``,
          );
          return 0;
        } finally {
          await client.close();
          redis.disconnect();
        }
      }),
  );

  verbCommand(program, 'cleanup').action(
    async (opId: string, opts: { wait?: boolean; json?: boolean }, c: Command) =>
      runAction(exit, opts.json, async () => {
        checkName('operation', opId, 'OP');
        const ctx = contextOf(c);
        const redis = await openRedis(ctx.env, 'lifeboat-dr-cleanup');
        const { RecoveryClient } = await import('../../replicator/jobs/recovery-client.js'); // bullmq loads only here
        const client = new RecoveryClient(redis, redisPrefix(ctx.env));
        try {
          const e = await client.cleanup(opId, localRequester());
          if (opts.wait) return await waitAndReport(client, e, opts.json === true, ctx.out);
          if (opts.json) printJson({ opId, job: 'cleanup', queued: true });
          else ctx.out(`${opId}: cleanup queued`);
          return 0;
        } finally {
          await client.close();
          redis.disconnect();
        }
      }),
  );
}
