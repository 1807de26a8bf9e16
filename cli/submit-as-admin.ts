/** Opens the policy engine for one `dr` command and submits to it as dr.yaml's admin. */
import { randomUUID } from 'node:crypto';
import type { LoadedConfig } from '../core/config.js';
import { envIsSet } from '../core/env.js';
import { DrError } from '../core/errors.js';
import { homePaths } from '../core/home.js';
import type { Command as EngineCommand, Reply } from '../engine/contract.js';
import type { Engine } from '../engine/create-engine.js';
import type { CliContext } from './context.js';
import { redisPrefix, requireRedisUrl } from './recovery-connect.js';

type CliCommand = Pick<EngineCommand, 'verb' | 'args'> & { app?: string };

/** dr.yaml's admin, the person the command line acts as; an error with the remedy when none. */
export function requireAdmin(config: LoadedConfig): string {
  if (config.admin) return config.admin;
  throw new DrError(`${homePaths(config.home).config} names no admin`, {
    code: 'config_invalid',
    subject: 'admin',
    remedy:
      'add people: with yourself and `admin: NAME` to dr.yaml (see docs/configuration.md; dr init writes both), and copy the shipped policies/ into the home; the command line acts as that person',
  });
}

/**
 * An engine on this home's Redis for one command. It loads (json-rules-engine, ioredis) only for
 * the commands that use it; its info lines ("policies loaded") show only with DR_LOG_LEVEL, since
 * the reply is the output. The caller closes it.
 */
export async function openCliEngine(ctx: CliContext, config: LoadedConfig): Promise<Engine> {
  const redisUrl = requireRedisUrl(ctx.env);
  const { createEngine } = await import('../engine/index.js');
  return createEngine({
    home: config.home,
    config,
    redisUrl,
    prefix: redisPrefix(ctx.env),
    log: envIsSet('DR_LOG_LEVEL', ctx.env) ? ctx.log : ctx.log.child({}, { level: 'warn' }),
    watchPolicies: false,
  });
}

/** The command as the engine takes it from the command line, acting as `person`. */
export function cliCommand(person: string, command: CliCommand): EngineCommand {
  return {
    id: `cli-${randomUUID()}`,
    actor: `cli:${person}`,
    surface: 'cli',
    ...command,
    at: new Date().toISOString(),
  };
}

/**
 * Opens an engine, submits the command as `cli:<admin>` and closes it. `anyone` is for reads
 * (`report`): without an admin the command acts as `cli:local` instead of failing.
 */
export async function submitAsAdmin(
  ctx: CliContext,
  config: LoadedConfig,
  command: CliCommand,
  { anyone = false }: { anyone?: boolean } = {},
): Promise<Reply> {
  const person = anyone ? (config.admin ?? 'local') : requireAdmin(config);
  const engine = await openCliEngine(ctx, config);
  try {
    return await engine.submit(cliCommand(person, command));
  } finally {
    await engine.close();
  }
}
