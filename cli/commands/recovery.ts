import type { Command } from 'commander';
import { formatBytes, formatDuration, parseDuration } from '../../core/units.js';
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
import { contextOf, type ExitState, printJson, runAction, usageError } from '../context.js';
import { localRequester, openRedis, redisPrefix } from '../recovery-connect.js';
import { pointArg } from './point-arg.js';

interface OperationOptions {
  point?: string;
  keep?: string;
  wait?: boolean;
  json?: boolean;
}

export function registerRecovery(program: Command, exit: ExitState): void {
  const define = (name: OperationName, description: string) => {
    const cmd = program.command(name).description(description).argument('<app>', 'the app');
    if (name !== 'failback') {
      cmd.option(
        '--point <id>',
        'point id from `dr points`, or latest (the latest consistent point)',
        'latest',
      );
    }
    if (name === 'drill')
      cmd.option('--keep <duration>', 'keep the drill server this long, then clean up', '30m');
    cmd
      .option(
        '--wait',
        'follow the operation until it finishes and print the result (exit 1 on failure)',
      )
      .option('--json', 'print JSON')
      .action(async (app: string, opts: OperationOptions, c: Command) =>
        runAction(exit, opts.json, async () => {
          const ctx = contextOf(c);
          const point = opts.point === undefined ? 'latest' : pointArg(opts.point);
          const keepMs = opts.keep === undefined ? undefined : parseDuration(opts.keep);
          if (opts.keep !== undefined && (keepMs === undefined || keepMs < 1000)) {
            throw usageError(
              `--keep ${opts.keep} is not a duration of at least 1s`,
              'pass it like 30m or 2h',
            );
          }
          const prefix = redisPrefix(ctx.env);
          const redis = await openRedis(ctx.env, `lifeboat-dr-${name}`);
          // bullmq loads only for the commands that use the queue, not for every `dr`.
          const { RecoveryClient } = await import('../../replicator/jobs/recovery-client.js');
          const client = new RecoveryClient(redis, prefix);
          try {
            const e = await client.enqueue(name, {
              app,
              requestedBy: localRequester(),
              ...(point === 'latest' ? {} : { point }),
              ...(keepMs !== undefined ? { keepMs } : {}),
            });
            if (!opts.wait) {
              if (opts.json) printJson({ opId: e.opId, job: name, app, queued: true });
              else
                ctx.out(
                  `${e.opId}: ${name} of ${app} queued (follow it with --wait, stop it with \`dr cancel ${e.opId}\`)`,
                );
              return 0;
            }
            if (!opts.json) ctx.out(`${e.opId}: ${name} of ${app} queued`);
            return await waitAndReport(client, e, opts.json === true, ctx.out);
          } finally {
            await client.close();
            redis.disconnect();
          }
        }),
      );
  };
  define('drill', 'recover an app in isolation, check it, keep it for --keep, then clean up');
  define('failover', 'recover an app in production mode and keep it running');
  define(
    'failback',
    "copy a failed-over app's recovered volumes back to its original volumes (changed blocks only), stop the recovered server and let the agent replicate again",
  );
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
    else if (!json && ev.type === 'step' && ev.step && (ev.progress === 1 || ev.step === 'resumed'))
      out(`  ${ev.step}`);
    else if (!json && ev.type === 'started' && ev.step === 'resumed')
      out('  resumed by another worker');
  }
  if (!finished) return 1;
  if (finished.error) {
    if (json) printJson({ opId: e.opId, job: e.job, app: e.app, ok: false, error: finished.error });
    process.stderr.write(`dr: ${e.job} ${e.opId} of ${e.app} failed: ${finished.error.message}\n`);
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
  out(`${r.opId}: ${r.app} is back on its original site; its agent may replicate again`);
  out(
    `  sent ${formatBytes(r.bytesSent)} of ${formatBytes(r.size)} (only blocks whose MAC differed)`,
  );
  for (const v of r.volumes) out(`  ${v.name}: ${v.blocksSent} of ${v.blocks} blocks`);
  out(`  pre-copy ${ms(r.precopyMs)}, downtime ${ms(r.downtimeMs)}, total ${ms(r.totalMs)}`);
  if (r.resumes > 0) out(`  resumed ${r.resumes} time(s) after a worker stopped`);
  out(`  restart the agent: \`dr agent --app ${r.app}\` (it resyncs only what failback wrote)`);
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
  if (r.resumes > 0) out(`  resumed ${r.resumes} time(s) after a worker stopped`);
  if (r.cleanupAt) out(`  cleanup at ${r.cleanupAt} (now: \`dr cleanup ${r.opId}\`)`);
}
