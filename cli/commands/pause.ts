import type { Command } from 'commander';
import { checkName } from '../../core/names.js';
import { contextOf, type ExitState, printJson, runAction } from '../context.js';
import { submitAsAdmin } from '../submit-as-admin.js';
import { verbCommand } from '../verb-command.js';

/**
 * `dr pause APP` / `dr resume APP`: submitted to the policy engine as the local administrator
 * (dr.yaml `admin:`), like `dr drill`. Exit 0 when done (or already paused), 1 when a policy
 * refuses, 2 for anything else that stopped it (not paused, failed over, gateway down).
 */
export function registerPause(program: Command, exit: ExitState): void {
  const define = (verb: 'pause' | 'resume') =>
    verbCommand(program, verb).action(async (app: string, opts: { json?: boolean }, c: Command) =>
      runAction(exit, opts.json, async () => {
        checkName('app', app, 'APP');
        const ctx = contextOf(c);
        const config = await ctx.config();
        const reply = await submitAsAdmin(ctx, config, { verb, app, args: {} });
        if (opts.json)
          printJson({
            ok: reply.ok,
            app,
            verb,
            summary: reply.summary,
            ...(reply.decision ? { decision: reply.decision } : {}),
            ...(reply.data !== undefined ? { data: reply.data } : {}),
          });
        if (reply.ok) {
          if (!opts.json) ctx.out(reply.summary);
          return 0;
        }
        process.stderr.write(`dr: ${reply.summary}\n`);
        for (const line of reply.details ?? []) process.stderr.write(`  ${line}\n`);
        return reply.decision?.outcome === 'deny' ? 1 : 2;
      }),
    );
  define('pause');
  define('resume');
}
