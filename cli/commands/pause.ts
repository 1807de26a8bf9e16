import { randomUUID } from 'node:crypto';
import type { Command } from 'commander';
import { envIsSet } from '../../core/env.js';
import { DrError } from '../../core/errors.js';
import { homePaths } from '../../core/home.js';
import { checkName } from '../../core/names.js';
import { contextOf, type ExitState, printJson, runAction } from '../context.js';
import { redisPrefix, requireRedisUrl } from '../recovery-connect.js';
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
        const redisUrl = requireRedisUrl(ctx.env);
        if (!config.admin) {
          throw new DrError(`${homePaths(config.home).config} names no admin`, {
            code: 'config_invalid',
            subject: 'admin',
            remedy:
              'add people: with yourself and `admin: NAME` to dr.yaml (see docs/configuration.md); the command line acts as that person',
          });
        }
        // The engine (json-rules-engine, ioredis) loads only for the commands that use it.
        const { createEngine } = await import('../../engine/index.js');
        const engine = await createEngine({
          home: config.home,
          config,
          redisUrl,
          prefix: redisPrefix(ctx.env),
          log: envIsSet('DR_LOG_LEVEL', ctx.env) ? ctx.log : ctx.log.child({}, { level: 'warn' }),
          watchPolicies: false,
        });
        try {
          const reply = await engine.submit({
            id: `cli-${randomUUID()}`,
            actor: `cli:${config.admin}`,
            surface: 'cli',
            verb,
            app,
            args: {},
            at: new Date().toISOString(),
          });
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
        } finally {
          await engine.close();
        }
      }),
    );
  define('pause');
  define('resume');
}
