import { createHash, randomUUID } from 'node:crypto';
import { isAbsolute, resolve } from 'node:path';
import { Queue, Worker } from 'bullmq';
import type { Config } from '../core/config.js';
import { errorMessage } from '../core/errors.js';
import { type Logger, silentLog } from '../core/log.js';
import { connectRedis } from '../core/redis.js';
import { reportRedisError, watchRedis } from '../core/redis-outage.js';
import { settleWithin } from '../core/settle-within.js';
import { RecoveryClient } from '../replicator/jobs/recovery-client.js';
import { DEFAULT_PREFIX, recoveryKeys } from '../replicator/jobs/recovery-contract.js';
import { AlertStore } from './alert-store.js';
import { ApprovalStore } from './approval-store.js';
import { AuditLog } from './audit-log.js';
import { startBackground } from './background.js';
import { ACTION_VERBS, type Command, type ControlPlane, type Reply, VERBS } from './contract.js';
import { ENGINE_QUEUE, type EngineContext } from './engine-context.js';
import { resolveIdentity } from './identity.js';
import { NoticeStream } from './notice-stream.js';
import { planDirOf } from './plan-named.js';
import { formatProblem, type PolicyProblem } from './policy.js';
import { policyParseOptions } from './policy-parse-options.js';
import { PolicyWatcher } from './policy-watcher.js';
import { readReport } from './read-report.js';
import { readHistory, readPoints, readPolicy, readStatus } from './read-verbs.js';
import { expireApproval, sweepGranted } from './start-granted.js';
import { submitPress } from './submit-approval.js';
import { submitAck, submitCancel, submitCleanup } from './submit-control.js';
import { submitOperation } from './submit-operation.js';
import { submitPause } from './submit-pause.js';
import { submitPlanControl } from './submit-plan-control.js';
import { submitThrottle } from './submit-throttle.js';
import { argsProblem } from './verbs.js';

export interface EngineOptions {
  /** DR_HOME: the policy directory named in dr.yaml is relative to it. */
  home: string;
  /** From core/config.ts readConfig. */
  config: Config;
  /** The engine opens its own connections. */
  redisUrl: string;
  /** Redis key prefix, `lifeboat:` by default (DR_REDIS_PREFIX). */
  prefix?: string;
  log?: Logger;
  /** Clock, for tests. */
  now?: () => number;
  /** Watch the policy directory and reload on change (true by default). */
  watchPolicies?: boolean;
  /** How often the RPO monitor looks, in ms (5 s by default). */
  monitorEveryMs?: number;
  /** How often pending approval cards are checked for changed facts, in ms (15 s by default). */
  cardsEveryMs?: number;
}

export interface Engine extends ControlPlane {
  /**
   * Background duties: replicator events → operation notices, approval expiry, schedulers, RPO
   * monitor. Safe when several engine processes share one Redis.
   */
  start(): Promise<void>;
  close(): Promise<void>;
  /** The policy set in force and the problems of the last load (for `policy list` and tests). */
  policies(): { set: ReturnType<PolicyWatcher['current']>; problems: PolicyProblem[] };
  /** Reloads the policy files now; true when they were accepted. */
  reloadPolicies(): Promise<boolean>;
}

/** The control plane: decides commands under the policies and acts on them through Redis. */
export async function createEngine(options: EngineOptions): Promise<Engine> {
  const {
    home,
    config,
    redisUrl,
    prefix = DEFAULT_PREFIX,
    log = silentLog,
    now = Date.now,
  } = options;
  const redis = connectRedis(redisUrl, 'lifeboat-engine');
  watchRedis(redis, log, 'engine');
  const keys = recoveryKeys(prefix);
  const queue = new Queue(ENGINE_QUEUE, { connection: redis, prefix: keys.bullPrefix });
  // Without a listener BullMQ prints a queue's connection errors raw on standard error.
  queue.on('error', (err) => reportRedisError(log, err, 'engine queue'));
  const notices = new NoticeStream(redis, prefix, now);
  const dir = isAbsolute(config.policies) ? config.policies : resolve(home, config.policies);

  const watcher = new PolicyWatcher({
    dir,
    parse: () => policyParseOptions(config, home),
    alsoWatch: [planDirOf(home)],
    onRefused: async (problems) => {
      const text = problems.map(formatProblem).join('\n');
      log.error(
        { problems: problems.map(formatProblem) },
        'policy files refused; every action is denied until they are fixed',
      );
      // One alert per distinct problem, however many engine processes saw it.
      const digest = createHash('sha256').update(text).digest('hex').slice(0, 16);
      const fresh = await redis
        .set(`${prefix}policy:refused:${digest}`, '1', 'EX', 3600, 'NX')
        .catch(() => null);
      if (fresh !== 'OK') return;
      await ctx.audit
        .append('policy', { refused: problems.map(formatProblem) })
        .catch(() => undefined); // Redis away: logged above
      await notices
        .publish({
          kind: 'policy.invalid',
          key: 'policy',
          targets: config.channels.admin,
          severity: 'critical',
          summary: `Policy files refused (${problems.length} problem(s)): every action is denied until they are fixed${watcher.current() ? '; the alerts of the last good set still run' : ''}`,
          details: problems.map(formatProblem),
          data: { problems },
        })
        .catch((err: unknown) =>
          log.warn({ err: errorMessage(err) }, 'cannot publish the policy alert'),
        );
    },
    onLoaded: async (set) => {
      log.info({ policies: set.policies.length, dir }, 'policies loaded');
      await background?.policiesChanged(set);
    },
  });

  const recoveryClient = new RecoveryClient(redis, prefix);
  recoveryClient.queue.on('error', (err) => reportRedisError(log, err, 'recovery queue'));
  const ctx: EngineContext = {
    home,
    config,
    prefix,
    log,
    now,
    redis,
    policies: () => watcher.current(),
    policyProblems: () => watcher.lastProblems(),
    approvals: new ApprovalStore(redis, prefix),
    alerts: new AlertStore(redis, prefix),
    notices,
    audit: new AuditLog(redis, prefix, now),
    recovery: recoveryClient,
    queue,
    submit: (c) => submit(c),
  };
  let background: Awaited<ReturnType<typeof startBackground>> | undefined;
  await watcher.reload();
  if (options.watchPolicies !== false) watcher.watch();

  const submit = async (command: Command): Promise<Reply> => {
    const bad = checkCommand(command);
    if (bad) return { ok: false, summary: bad, private: true };
    try {
      // A surface redelivering the same command (same id) gets the first answer, not a second job.
      if ((ACTION_VERBS as readonly string[]).includes(command.verb)) {
        const seenKey = `${prefix}command:${command.id}`;
        const first = await redis.set(seenKey, '', 'EX', 600, 'NX');
        if (first !== 'OK') {
          const cached = await redis.get(seenKey);
          return cached
            ? (JSON.parse(cached) as Reply)
            : {
                ok: true,
                private: true,
                summary: `Command ${command.id} is already being handled`,
              };
        }
        const reply = await handle(command);
        await redis.set(seenKey, JSON.stringify(reply), 'EX', 600);
        return reply;
      }
      return await handle(command);
    } catch (err) {
      log.error(
        { err: errorMessage(err), verb: command.verb, app: command.app },
        'engine: command failed',
      );
      return {
        ok: false,
        summary: `Could not ${command.verb}${command.app ? ` ${command.app}` : ''}: ${errorMessage(err)}`,
      };
    }
  };

  const handle = async (command: Command): Promise<Reply> => {
    {
      await ctx.audit.append(
        'command',
        {
          id: command.id,
          surface: command.surface,
          channel: command.channel ?? null,
          verb: command.verb,
          app: command.app ?? null,
          args: command.args,
        },
        command.actor,
      );
      const who = resolveIdentity(config, command.actor);
      switch (command.verb) {
        case 'help':
          return { ok: false, summary: 'help is answered by the surface, from its grammar table' };
        case 'status':
          return await readStatus(ctx, command);
        case 'points':
          return await readPoints(ctx, command);
        case 'history':
          return await readHistory(ctx, command);
        case 'report':
          return await readReport(ctx, command);
        case 'policy':
          return await readPolicy(ctx, command, who);
        case 'drill':
        case 'failover':
        case 'failback':
          return await submitOperation(ctx, command, who);
        case 'approve':
        case 'reject':
          return await submitPress(ctx, command, who);
        case 'cancel':
          return await submitCancel(ctx, command, who);
        case 'cleanup':
          return await submitCleanup(ctx, command, who);
        case 'ack':
          return await submitAck(ctx, command, who);
        case 'pause':
        case 'resume':
          return await submitPause(ctx, command, who);
        case 'throttle':
          return await submitThrottle(ctx, command, who);
        case 'continue':
        case 'retry':
        case 'skip':
        case 'rollback':
          return await submitPlanControl(ctx, command, who);
      }
    }
  };

  let worker: Worker | undefined;
  let workerConn: ReturnType<typeof connectRedis> | undefined;
  return {
    submit,
    policies: () => ({ set: watcher.current(), problems: watcher.lastProblems() }),
    reloadPolicies: () => watcher.reload(),
    async start() {
      if (worker) return;
      workerConn = connectRedis(redisUrl, 'lifeboat-engine-worker');
      watchRedis(workerConn, log, 'engine worker');
      worker = new Worker(
        ENGINE_QUEUE,
        async (job) => {
          if (job.name === 'approval-expiry')
            await expireApproval(ctx, String((job.data as { id: string }).id));
          else if (job.name === 'scheduled-command')
            await background?.runScheduled(job.data, job.id ?? job.name);
        },
        {
          connection: workerConn,
          prefix: keys.bullPrefix,
          concurrency: 4,
        },
      );
      worker.on('error', (err) => reportRedisError(log, err, 'engine worker'));
      background = await startBackground(ctx, {
        redisUrl,
        ...(options.monitorEveryMs ? { monitorEveryMs: options.monitorEveryMs } : {}),
        ...(options.cardsEveryMs ? { cardsEveryMs: options.cardsEveryMs } : {}),
      });
      const set = watcher.current();
      if (set) await background.policiesChanged(set);
      await sweepGranted(ctx);
    },
    async close() {
      watcher.close();
      await background?.stop();
      // With Redis away a graceful close waits for it forever; its jobs are retried elsewhere.
      const redisUp = workerConn ? await settleWithin(workerConn.ping(), 2000) : false;
      await worker?.close(!redisUp);
      workerConn?.disconnect();
      await queue.close();
      await ctx.recovery.close();
      redis.disconnect();
    },
  };
}

/** The shape a surface must send; anything else is refused with the reason. */
function checkCommand(c: Command): string | undefined {
  if (c === null || typeof c !== 'object') return 'not a command';
  if (typeof c.actor !== 'string' || c.actor === '') return 'a command needs an actor';
  if (!(VERBS as readonly string[]).includes(c.verb))
    return `"${String(c.verb)}" is not a command; try help`;
  if (c.app !== undefined && typeof c.app !== 'string') return 'the app must be a name';
  if (c.args === null || typeof c.args !== 'object') return 'a command needs args (may be empty)';
  if (typeof c.id !== 'string' || c.id === '') return 'a command needs an id';
  // The one place ranges are checked, whichever surface sent the command.
  return argsProblem(c.verb, c.args, c.app);
}

export const newCommandId = () => randomUUID();
