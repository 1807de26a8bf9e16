import { dirname, join } from 'node:path';
import { SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { readEnv } from '../../core/env.js';
import { isDrError } from '../../core/errors.js';
import { reverseAppId } from '../../core/names.js';
import { parseRateSchedule, RATE_HINT } from '../../core/rate-schedule.js';
import { formatBytes } from '../../core/units.js';
import {
  ReplicationAgent,
  resolveAgentSettings,
  type SyncProgress,
} from '../../replicator/agent/index.js';
import { WireLink } from '../../replicator/agent/wire-link.js';
import { gatewayClient, loadKek } from '../connect.js';
import {
  contextOf,
  type ExitState,
  printJson,
  reportError,
  runAction,
  usageError,
} from '../context.js';
import { createAgentMetrics } from '../metrics/agent-metrics.js';
import { metricsRoute } from '../metrics/metrics-route.js';
import { reverseVolumes } from '../reverse-volumes.js';
import { stopSignal } from '../stop-signal.js';
import { accessRuleFrom } from '../web/access-rule.js';
import { startWebServer } from '../web/web-server.js';

export function registerAgent(program: Command, exit: ExitState): void {
  program
    .command('agent')
    .description("replicate an app's volumes to the gateway (runs on the protected server)")
    .requiredOption('--app <app>', 'the app to protect')
    .option(
      '--once',
      'sync every change since the last point, commit one point and exit (exit 3 when the app is paused)',
    )
    .option(
      '--interval <duration>',
      'how often a cycle starts: a period, not a pause (default: agent.interval in dr.yaml, 1s)',
    )
    .option(
      '--tracker <kind>',
      'how changes are found: trace (block tracepoints; root and a block device), scan, or auto (default: agent.tracker in dr.yaml)',
    )
    .option(
      '--full-copy',
      'read every block, even image holes and free space of a mounted ext4/xfs (default: agent.fullCopy in dr.yaml, false)',
    )
    .option(
      '--max-rate <rate>',
      "bandwidth cap, like 20MiB/s or `10MiB/s mon-fri 08:00-18:00, 50MiB/s` in the app's time zone (default: agent.maxRate in dr.yaml, none)",
    )
    .option('--json', 'print the cycle report as JSON (with --once)')
    .option(
      '--reverse',
      "replicate the app's way home (as APP--home) from the server it failed over to; with --volume for each volume",
    )
    .option(
      '--volume <name=path>',
      'with --reverse: where a volume is on this server (repeat per volume)',
      collect,
      [],
    )
    .option(
      '--size <name=bytes>',
      'with --reverse: replicate only the first BYTES of the volume (a disk larger than it)',
      collect,
      [],
    )
    .option(
      '--metrics <host:port>',
      'serve Prometheus metrics over plain HTTP at http://HOST:PORT/metrics while the agent runs',
    )
    .action(
      async (
        opts: {
          app: string;
          once?: boolean;
          interval?: string;
          tracker?: string;
          fullCopy?: boolean;
          maxRate?: string;
          json?: boolean;
          metrics?: string;
          reverse?: boolean;
          volume: string[];
          size: string[];
        },
        cmd: Command,
      ) =>
        runAction(exit, opts.json, async () => {
          const ctx = contextOf(cmd);
          const config = await ctx.config();
          // Checked before anything starts: a bad value is one clear line, not a silent default.
          const tracefs = readEnv('DR_TRACEFS', ctx.env);
          const bufferKiB = readEnv('DR_TRACE_BUFFER_KIB', ctx.env);
          if (!opts.reverse && (opts.volume.length > 0 || opts.size.length > 0)) {
            throw usageError(
              '--volume and --size go with --reverse',
              'add --reverse, or leave them out',
            );
          }
          const forward = resolveAgentSettings(config, opts.app, {
            interval: opts.interval,
            tracker: opts.tracker,
            ...(opts.fullCopy ? { fullCopy: true } : {}),
            trace: {
              ...(tracefs ? { tracefs } : {}),
              ...(bufferKiB ? { bufferKiB } : {}),
            },
          });
          // The way home replicates under its own app id (its own keys and points at the gateway).
          const id = opts.reverse ? reverseAppId(opts.app) : opts.app;
          const settings = opts.reverse
            ? {
                ...forward,
                app: id,
                appConfig: reverseVolumes(opts.app, forward.appConfig, opts.volume, opts.size),
                stateDir: join(dirname(forward.stateDir), id),
              }
            : forward;
          let maxRate = config.agent.maxRate;
          if (opts.maxRate !== undefined) {
            const r = parseRateSchedule(opts.maxRate);
            if ('error' in r) throw usageError(`--max-rate ${opts.maxRate}: ${r.error}`, RATE_HINT);
            maxRate = r.schedule;
          }
          const link = new WireLink({
            compression: config.agent.compression,
            maxRate,
            ...(settings.appConfig.timeZone ? { timeZone: settings.appConfig.timeZone } : {}),
          });
          const log = ctx.log.child({ part: 'agent' });
          const access = accessRuleFrom(ctx.env);
          const kek = await loadKek(config);
          const metrics = opts.metrics ? await createAgentMetrics(id) : undefined;
          const metricsServer =
            metrics && opts.metrics
              ? await startWebServer({
                  listen: opts.metrics,
                  routes: [metricsRoute(metrics.registry, access)],
                  access,
                  what: '--metrics',
                  log,
                })
              : undefined;
          if (metricsServer && !opts.json)
            ctx.out(`metrics at http://${metricsServer.address}/metrics`);
          const client = gatewayClient(config);
          const stopping = stopSignal({
            part: 'dr agent',
            abandons:
              'a batch the gateway did not acknowledge is sent again when the agent starts again',
            env: ctx.env,
          });
          const bar = process.stdout.isTTY && !opts.json ? progressBar() : undefined;
          const agent = new ReplicationAgent({
            settings,
            link,
            client,
            kek,
            log,
            ...(bar ? { onProgress: bar.update } : {}),
            ...(metrics ? { observe: metrics.observe } : {}),
          });
          try {
            const report = await agent.run({ once: opts.once === true, signal: stopping.signal });
            bar?.stop();
            if (opts.once && report) {
              if (opts.json) printJson(report);
              else if (report.unchanged)
                ctx.out(
                  `no change since point ${report.point.id} of ${id} (${report.point.label}); no new point committed (checked in ${(report.ms / 1000).toFixed(1)} s)`,
                );
              else
                ctx.out(
                  `point ${report.point.id} committed for ${id} (${report.point.label}): ${report.blocksSent} blocks${report.blocksRepeated ? ` (${report.blocksRepeated} as references)` : ''}, ${formatBytes(report.bytesSent)} sent in ${(report.ms / 1000).toFixed(1)} s`,
                );
            }
            return 0;
          } catch (err) {
            bar?.stop();
            if (stopping.signal.aborted && !opts.once) return 0;
            // A one-shot run on a paused app: said plainly, with its own exit code (3).
            if (opts.once && isDrError(err, 'app_paused')) {
              reportError(err, opts.json === true);
              return 3;
            }
            throw err;
          } finally {
            client.close();
            await metricsServer?.close();
            stopping.dispose();
          }
        }),
    );
}

/** A terminal progress bar for the scan; only drawn while a volume is being scanned. */
function progressBar(): { update: (p: SyncProgress) => void; stop: () => void } {
  const bar = new SingleBar({
    format: '{volume} [{bar}] {percentage}% | {done}/{total} | sent {sent}',
    hideCursor: true,
    clearOnComplete: true,
  });
  let current = '';
  return {
    update: (p) => {
      if (p.phase !== 'initial-sync') return;
      if (p.volume !== current) {
        if (current) bar.stop();
        current = p.volume;
        bar.start(p.size, 0, {
          volume: p.volume,
          done: '0 B',
          total: formatBytes(p.size),
          sent: '0 B',
        });
      }
      bar.update(p.scanned, { done: formatBytes(p.scanned), sent: formatBytes(p.sentBytes) });
      if (p.scanned >= p.size) {
        bar.stop();
        current = '';
      }
    },
    stop: () => bar.stop(),
  };
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}
