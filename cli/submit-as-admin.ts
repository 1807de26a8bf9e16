/** Submits one command to the policy engine as dr.yaml's admin, for the `dr` commands of chat verbs. */
import { randomUUID } from 'node:crypto';
import type { LoadedConfig } from '../core/config.js';
import { envIsSet } from '../core/env.js';
import { DrError } from '../core/errors.js';
import { homePaths } from '../core/home.js';
import type { Command as EngineCommand, Reply } from '../engine/contract.js';
import type { CliContext } from './context.js';
import { redisPrefix, requireRedisUrl } from './recovery-connect.js';

/**
 * Opens an engine on this home's Redis, submits the command as `cli:<admin>` and closes it. The
 * engine (json-rules-engine, ioredis) loads only for the commands that use it.
 */
export async function submitAsAdmin(
  ctx: CliContext,
  config: LoadedConfig,
  command: Pick<EngineCommand, 'verb' | 'args'> & { app?: string },
): Promise<Reply> {
  const redisUrl = requireRedisUrl(ctx.env);
  if (!config.admin) {
    throw new DrError(`${homePaths(config.home).config} names no admin`, {
      code: 'config_invalid',
      subject: 'admin',
      remedy:
        'add people: with yourself and `admin: NAME` to dr.yaml (see docs/configuration.md); the command line acts as that person',
    });
  }
  const { createEngine } = await import('../engine/index.js');
  const engine = await createEngine({
    home: config.home,
    config,
    redisUrl,
    prefix: redisPrefix(ctx.env),
    log: envIsSet('DR_LOG_LEVEL', ctx.env) ? ctx.log : ctx.log.child({}, { level: 'warn' }),
    watchPolicies: false,
  });
  try {
    return await engine.submit({
      id: `cli-${randomUUID()}`,
      actor: `cli:${config.admin}`,
      surface: 'cli',
      ...command,
      at: new Date().toISOString(),
    });
  } finally {
    await engine.close();
  }
}
