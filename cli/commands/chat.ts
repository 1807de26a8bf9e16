import { userInfo } from 'node:os';
import type { Command } from 'commander';
import { contextOf, type ExitState, runAction } from '../context.js';
import { openRedis, redisPrefix, requireRedisUrl } from '../recovery-connect.js';

export function registerChat(program: Command, exit: ExitState): void {
  program
    .command('chat')
    .description('the chat commands in this terminal (type `help`), with notices as they come')
    .option(
      '--as <person>',
      "who you are: console:<person> (default: dr.yaml's admin, else your login name)",
    )
    .action(async (opts: { as?: string }, cmd: Command) =>
      runAction(exit, false, async () => {
        const ctx = contextOf(cmd);
        const config = await ctx.config();
        const redisUrl = requireRedisUrl(ctx.env);
        const prefix = redisPrefix(ctx.env);
        const person = opts.as ?? config.admin ?? userInfo().username;
        const { ConsoleSurface, checkPerson } = await import(
          '../../bot/console/console-surface.js'
        );
        checkPerson(person);
        const noticeRedis = await openRedis(ctx.env, 'lifeboat-chat-notices');
        // Engine and console log lines would mix with the conversation: only warnings and worse.
        const log = ctx.env.DR_LOG_LEVEL ? ctx.log : ctx.log.child({}, { level: 'warn' });
        const { createEngine } = await import('../../engine/index.js');
        const engine = await createEngine({ home: ctx.home, config, redisUrl, prefix, log });
        try {
          await engine.start();
          await new ConsoleSurface({
            plane: engine,
            person,
            input: process.stdin,
            output: process.stdout,
            noticeRedis,
            prefix,
            prompt: process.stdin.isTTY === true,
            log,
            people: consolePeople(config.people),
          }).run();
        } finally {
          await engine.close();
          noticeRedis.disconnect();
        }
        return 0;
      }),
    );
}

/** The people with a `console:` id, who `as <person>` in the console can become. */
function consolePeople(
  people: Record<string, { ids: string[]; groups?: string[] }>,
): { name: string; groups: string[] }[] {
  return Object.entries(people)
    .filter(([name, p]) => p.ids.includes(`console:${name}`))
    .map(([name, p]) => ({ name, groups: p.groups ?? [] }));
}
