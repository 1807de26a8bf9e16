import { userInfo } from 'node:os';
import type { Command } from 'commander';
import { envIsSet } from '../../core/env.js';
import { DrError } from '../../core/errors.js';
import { consoleIdentity } from '../console-identity.js';
import { contextOf, type ExitState, runAction } from '../context.js';
import { openRedis, redisPrefix, requireRedisUrl } from '../recovery-connect.js';

export function registerChat(program: Command, exit: ExitState): void {
  program
    .command('chat')
    .description('the chat commands in this terminal (type `help`), with notices as they come')
    .option(
      '--as <person>',
      'act as console:<person>: only in the demo home, or where dr.yaml sets console.allowAs (default and otherwise: your login name)',
    )
    .action(async (opts: { as?: string }, cmd: Command) =>
      runAction(exit, false, async () => {
        const ctx = contextOf(cmd);
        const config = await ctx.config();
        const redisUrl = requireRedisUrl(ctx.env);
        const prefix = redisPrefix(ctx.env);
        const { person, note, switchAllowed } = consoleIdentity({
          config,
          home: ctx.home,
          login: loginName(),
          ...(opts.as !== undefined ? { as: opts.as } : {}),
        });
        if (note) ctx.out(`dr chat: ${note}`);
        const { ConsoleSurface } = await import('../../bot/console/console-surface.js');
        const noticeRedis = await openRedis(ctx.env, 'lifeboat-chat-notices');
        // Engine and console log lines would mix with the conversation: only warnings and worse.
        const log = envIsSet('DR_LOG_LEVEL', ctx.env)
          ? ctx.log
          : ctx.log.child({}, { level: 'warn' });
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
            allowSwitch: switchAllowed,
          }).run();
        } finally {
          await engine.close();
          noticeRedis.disconnect();
        }
        return 0;
      }),
    );
}

/** The operating-system user running this process (from the user database, not the environment). */
function loginName(): string {
  try {
    return userInfo().username;
  } catch (err) {
    throw new DrError(`cannot tell who runs dr chat: uid ${process.getuid?.()} has no user entry`, {
      code: 'usage',
      subject: 'dr chat',
      remedy: 'run it as a user listed in /etc/passwd, or chat from Slack or DingTalk',
      cause: err,
    });
  }
}

/** The people with a `console:` id, who `as <person>` in the console can become. */
function consolePeople(
  people: Record<string, { ids: string[]; groups?: string[] }>,
): { name: string; groups: string[] }[] {
  return Object.entries(people)
    .filter(([name, p]) => p.ids.includes(`console:${name}`))
    .map(([name, p]) => ({ name, groups: p.groups ?? [] }));
}
