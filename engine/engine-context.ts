import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../core/config.js';
import type { Logger } from '../core/log.js';
import type { RecoveryClient } from '../replicator/jobs/recovery-client.js';
import type { AlertStore } from './alert-store.js';
import type { ApprovalStore } from './approval-store.js';
import type { AuditLog } from './audit-log.js';
import type { Command, Reply } from './contract.js';
import type { NoticeStream } from './notice-stream.js';
import type { PolicyProblem } from './policy.js';
import type { PolicySet } from './policy-set.js';

/** The BullMQ queue of the engine's own jobs: approval expiries and scheduled commands. */
export const ENGINE_QUEUE = 'lifeboat-engine';

/** Everything the verb handlers share; built once by `createEngine`. */
export interface EngineContext {
  home: string;
  config: Config;
  prefix: string;
  log: Logger;
  now: () => number;
  redis: Redis;
  policies: () => PolicySet | undefined;
  policyProblems: () => PolicyProblem[];
  approvals: ApprovalStore;
  alerts: AlertStore;
  notices: NoticeStream;
  audit: AuditLog;
  recovery: RecoveryClient;
  queue: Queue;
  /** Submits a command as another (the scheduler); used by scheduled jobs. */
  submit: (command: Command) => Promise<Reply>;
}

/** What the engine remembers of an operation it started, for the notices that follow. */
export interface OperationMeta {
  opId: string;
  app: string;
  verb: string;
  requestedBy: string;
  channel?: string;
  approvalId?: string;
  /** A plan run: `app` is the plan's name, these its apps (whose channels hear of it). */
  plan?: string[];
}

export const opMetaKey = (prefix: string, opId: string) => `${prefix}opmeta:${opId}`;

export async function saveOpMeta(ctx: EngineContext, meta: OperationMeta): Promise<void> {
  await ctx.redis.set(opMetaKey(ctx.prefix, meta.opId), JSON.stringify(meta), 'EX', 30 * 86_400);
}

export async function loadOpMeta(
  ctx: EngineContext,
  opId: string,
): Promise<OperationMeta | undefined> {
  const raw = await ctx.redis.get(opMetaKey(ctx.prefix, opId));
  return raw === null ? undefined : (JSON.parse(raw) as OperationMeta);
}

/** Where notices about an app go: the asking channel, the app's channels, and `extra` (alerts, admin). */
export function targetsFor(
  ctx: EngineContext,
  app: string | undefined,
  channel: string | undefined,
  extra: 'alerts' | 'admin' | 'escalation' | undefined = undefined,
): string[] {
  const out: string[] = [];
  if (channel) out.push(channel);
  if (app) out.push(...(ctx.config.channels.apps[app] ?? []));
  if (extra) out.push(...ctx.config.channels[extra]);
  return [...new Set(out)];
}
