/**
 * Every command of `dr`, by the module under cli/commands/ that defines it,
 * in help order. Apart from main.ts, so that a command can ask which others
 * exist without loading them.
 */
export const COMMAND_MODULES = {
  init: ['init'],
  app: ['app'],
  gateway: ['gateway'],
  agent: ['agent'],
  points: ['points'],
  restore: ['restore'],
  verify: ['verify'],
  status: ['status'],
  worker: ['worker'],
  warm: ['warm'],
  recovery: ['drill', 'failover', 'failback'],
  operation: ['cancel', 'cleanup'],
  pause: ['pause', 'resume'],
  serve: ['serve'],
  chat: ['chat'],
  signin: ['signin'],
  policy: ['policy'],
  audit: ['audit'],
  up: ['up'],
  doctor: ['doctor'],
} as const satisfies Record<string, readonly string[]>;

export type CommandModule = keyof typeof COMMAND_MODULES;

/** Every command name `dr` knows. */
export const COMMAND_NAMES: readonly string[] = Object.values(COMMAND_MODULES).flat();
