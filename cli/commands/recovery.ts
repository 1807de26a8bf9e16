import type { Command } from 'commander';
import { findApp, type LoadedConfig } from '../../core/config.js';
import { peekEnv } from '../../core/env.js';
import { errorMessage } from '../../core/errors.js';
import { checkName } from '../../core/names.js';
import { formatBytes, formatDuration } from '../../core/units.js';
import type { CommandArgs } from '../../engine/contract.js';
import { stepLabel } from '../../engine/step-label.js';
import type {
  Enqueued,
  OperationName,
  RecoveryClient,
} from '../../replicator/jobs/recovery-client.js';
import type {
  FailbackResult,
  OperationEvent,
  OperationResult,
} from '../../replicator/jobs/recovery-contract.js';
import { type CliContext, contextOf, type ExitState, printJson, runAction } from '../context.js';
import { openRedis, redisPrefix, requireRedisUrl } from '../recovery-connect.js';
import { cliCommand, openCliEngine, requireAdmin } from '../submit-as-admin.js';
import { verbArgs, verbCommand } from '../verb-command.js';

interface OperationOptions {
  point?: string;
  keep?: string;
  wait?: boolean;
  json?: boolean;
  emergency?: boolean;
  dryRun?: boolean;
  reason?: string;
}

/**
 * Submits the operation to the policy engine as the local administrator (dr.yaml `admin:`), then
 * reports the decision: queued (and followed with --wait), waiting for approvals, or denied (exit 1).
 */
async function submitThroughEngine(
  ctx: CliContext,
  config: LoadedConfig,
  verb: OperationName,
  app: string,
  args: CommandArgs,
  opts: OperationOptions,
  plan = false,
): Promise<number> {
  const admin = requireAdmin(config);
  const prefix = redisPrefix(ctx.env);
  const redis = await openRedis(ctx.env, `lifeboat-dr-${verb}`);
  // bullmq and the engine load only for the commands that use them, not for every `dr`.
  const { RecoveryClient } = await import('../../replicator/jobs/recovery-client.js');
  const { lastEventId } = await import('../../replicator/jobs/operation-events.js');
  const client = new RecoveryClient(redis, prefix);
  const engine = await openCliEngine(ctx, config);
  try {
    const after = await lastEventId(redis, client.keys.events);
    const reply = await engine.submit(cliCommand(admin, { verb: verb as 'drill', app, args }));
    const d = reply.decision;
    if (!reply.ok || !d) {
      if (opts.json)
        printJson({ ok: false, app, job: verb, summary: reply.summary, decision: d ?? null });
      process.stderr.write(`dr: ${reply.summary}\n`);
      for (const line of reply.details ?? []) process.stderr.write(`  ${line}\n`);
      // A policy's refusal exits 1; anything else that stopped it (the app is busy) is an error, 2.
      return d?.outcome === 'deny' ? 1 : 2;
    }
    if (d.outcome === 'dryrun' || d.outcome === 'approval') {
      if (opts.json) printJson({ ok: true, app, job: verb, summary: reply.summary, decision: d });
      else {
        ctx.out(reply.summary);
        for (const line of reply.details ?? []) ctx.out(`  ${line}`);
        if (d.outcome === 'approval')
          ctx.out(
            `  approvers answer in chat: \`approve ${d.approval.id}\` or \`reject ${d.approval.id}\``,
          );
      }
      return 0;
    }
    if (d.outcome !== 'allow') return 1;
    const e: Enqueued = { opId: d.opId, job: plan ? 'plan' : verb, app, after };
    if (!opts.wait) {
      if (opts.json) printJson({ opId: e.opId, job: verb, app, queued: true, policy: fired(d) });
      else
        ctx.out(
          plan
            ? `${e.opId}: ${verb} of plan ${app} queued (follow it with \`dr plan status ${e.opId}\`, roll it back with \`dr plan rollback ${e.opId}\`)`
            : `${e.opId}: ${verb} of ${app} queued (follow it with --wait, stop it with \`dr cancel ${e.opId}\`)`,
        );
      return 0;
    }
    if (!opts.json) ctx.out(`${e.opId}: ${verb} of ${plan ? `plan ${app}` : app} queued`);
    if (plan) {
      for (const line of reply.details ?? []) if (!opts.json) ctx.out(`  ${line}`);
      const { waitForPlan } = await import('./plan-run.js');
      return await waitForPlan(client, e, opts.json === true, ctx.out);
    }
    return await waitAndReport(client, e, opts.json === true, ctx.out);
  } finally {
    await engine.close();
    await client.close();
    redis.disconnect();
  }
}

/** The usual "no app named" line and remedy. */
function noAppMessage(config: LoadedConfig, app: string): string {
  try {
    findApp(config, app);
    return '';
  } catch (err) {
    return errorMessage(err);
  }
}

/** The policies that let it through. */
const fired = (d: { policies: { policy: string; matched: boolean }[] }) =>
  d.policies.filter((p) => p.matched).map((p) => p.policy);

/** `dr drill|failover|failback APP`, as the verb table describes them, through the engine. */
export function registerRecovery(program: Command, exit: ExitState): void {
  for (const name of ['drill', 'failover', 'failback'] as const) {
    verbCommand(program, name).action(async (app: string, opts: OperationOptions, c: Command) =>
      runAction(exit, opts.json, async () => {
        checkName('app', app, 'APP');
        const ctx = contextOf(c);
        const args = verbArgs(name, { ...opts }, app);
        const config = await ctx.config();
        requireRedisUrl(ctx.env); // the clearest error first: nothing works without Redis
        let plan = false;
        if (!config.apps[app]) {
          // A plan's name goes where an app's goes; else refused like any decision (exit 1).
          const { planNamed } = await import('../../engine/plan-named.js');
          const found = await planNamed(config.home, Object.keys(config.apps), app);
          if (found.kind !== 'found') {
            const message =
              found.kind === 'invalid'
                ? `no app named ${JSON.stringify(app)}, and the plans in ${found.dir} have ${found.problems.length} problem(s): ${found.problems.map((p) => `${p.file}:${p.line}: ${p.reason}`).join('; ')} (fix them; \`dr plan lint\` lists them)`
                : `${noAppMessage(config, app)}${found.names.length ? ` (plans: ${found.names.join(', ')})` : ''}`;
            if (opts.json) printJson({ ok: false, app, job: name, summary: message });
            process.stderr.write(`dr: ${message}\n`);
            return 1;
          }
          plan = true;
        }
        return await submitThroughEngine(ctx, config, name, app, args, opts, plan);
      }),
    );
  }
}

/** Follows the operation to its end; prints progress lines, then the result with the RTO split. */
export async function waitAndReport(
  client: RecoveryClient,
  e: Enqueued,
  json: boolean,
  out: (line: string) => void,
): Promise<number> {
  let finished: OperationEvent | undefined;
  for await (const ev of client.follow(e)) {
    if (ev.type === 'finished') finished = ev;
    else if (
      !json &&
      ev.type === 'step' &&
      ev.step &&
      (ev.progress === 1 || ev.step === 'resumed')
    ) {
      const label = ev.detail ?? stepLabel(ev.step);
      if (label) out(`  ${label}`);
    } else if (!json && ev.type === 'started' && ev.step === 'resumed')
      out('  resumed by another worker');
  }
  if (!finished) return 1;
  if (finished.error) {
    if (json) printJson({ opId: e.opId, job: e.job, app: e.app, ok: false, error: finished.error });
    process.stderr.write(
      `dr: ${e.job} ${e.opId} of ${e.app} failed: ${firstLine(finished.error.message)}\n`,
    );
    return 1;
  }
  const result = finished.result;
  if (json) {
    printJson({ ok: true, job: e.job, ...result });
    return 0;
  }
  if (!result) return 0;
  if ('rto' in result) printResult(result, out);
  else if ('mode' in result && result.mode === 'failback') printFailback(result, out);
  else if ('mode' in result && result.mode === 'verify') {
    out(`${e.opId}: point ${result.point} of ${e.app} ${result.ok ? 'verified' : 'is damaged'}`);
    for (const p of result.problems) out(`  ${p.volume} block ${p.block}: ${p.reason}`);
    return result.ok ? 0 : 1;
  } else if ('removed' in result)
    out(
      `${e.opId}: cleaned up (${result.removed.length ? result.removed.join(', ') : 'nothing left'})`,
    );
  return 0;
}

function printFailback(r: FailbackResult, out: (line: string) => void): void {
  const ms = (n: number) => formatDuration(n);
  out(`${r.opId}: ${r.app} is back on its original site; ${r.protection.detail}`);
  out(
    `  sent ${formatBytes(r.bytesSent)} of ${formatBytes(r.size)} (only blocks whose MAC differed)`,
  );
  for (const v of r.volumes) out(`  ${v.name}: ${v.blocksSent} of ${v.blocks} blocks`);
  out(`  pre-copy ${ms(r.precopyMs)}, downtime ${ms(r.downtimeMs)}, total ${ms(r.totalMs)}`);
  if (r.quiesce)
    out(
      r.quiesce.how === 'frozen'
        ? `  the DR server was frozen for the final copy (${[...(r.quiesce.hook ? ['its freeze hook'] : []), ...r.quiesce.mounts.map((m) => `fsfreeze ${m}`)].join(', ')}), then stopped`
        : '  the DR server was stopped for the final copy (nothing of it could be frozen)',
    );
  if (r.resumes > 0) out(`  resumed ${r.resumes} time(s) after a worker stopped`);
  out(
    r.unfenced
      ? '  the source is back in service (its unfence command ran)'
      : `  no unfence command: start ${r.app} at its original site by hand`,
  );
}

function printResult(r: OperationResult, out: (line: string) => void): void {
  const ms = (n: number) => formatDuration(n);
  out(`${r.opId}: ${r.mode} of ${r.app} is healthy`);
  out(`  point ${r.point}, data age ${r.dataAgeSeconds} s`);
  out(
    `  RTO ${ms(r.rto.totalMs)}: materialise ${ms(r.rto.materialiseMs)}, launch ${ms(r.rto.launchMs)}, healthy ${ms(r.rto.healthyMs)}`,
  );
  out(`  health: ${r.health.output.split('\n')[0] ?? ''}`);
  out(`  server: ${r.server.id}${r.server.endpoint ? ` at ${r.server.endpoint}` : ''}`);
  if (r.fence) out(`  ${r.fence.fenced ? 'fenced' : 'NOT FENCED'}: ${r.fence.detail}`);
  for (const d of r.drills ?? []) out(`  ${d.ended ? '' : 'WARNING: '}${d.detail}`);
  if (r.resumes > 0) out(`  resumed ${r.resumes} time(s) after a worker stopped`);
  if (r.cleanupAt) out(`  cleanup at ${r.cleanupAt} (now: \`dr cleanup ${r.opId}\`)`);
  for (const w of r.server.warnings ?? []) out(`  warning: ${w}`);
}

/**
 * The first line of a failed operation's message; the rest (a health check's whole output) is
 * for DR_LOG_LEVEL=debug, and for `history` / the status page, which keep it.
 */
function firstLine(message: string): string {
  const [first = '', ...rest] = message.trim().split('\n');
  const level = peekEnv('DR_LOG_LEVEL');
  const debug = level === 'debug' || level === 'trace';
  if (rest.length === 0) return first;
  if (debug) return `${first}\n${rest.join('\n')}`;
  return `${first} (${rest.length} more line(s): run with DR_LOG_LEVEL=debug, or see the status page)`;
}
