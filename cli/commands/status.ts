import { join } from 'node:path';
import type { Command } from 'commander';
import { homePaths } from '../../core/home.js';
import { checkName, isName } from '../../core/names.js';
import { formatBytes } from '../../core/units.js';
import { readLedger } from '../../replicator/agent/point-ledger.js';
import type { AppStatus } from '../../replicator/transport/wire-types.js';
import { gatewayClient } from '../connect.js';
import { contextOf, type ExitState, printJson, runAction } from '../context.js';
import { unknownAppError } from '../unknown-app.js';

function unprotected(app: string): AppStatus {
  return {
    app,
    phase: 'unprotected',
    agent: null,
    lastPoint: null,
    lastConsistentPoint: null,
    lagSeconds: null,
    trackers: {},
    lastFreezeMs: null,
    lastResync: null,
    points: 0,
    bytesShipped: 0,
    throughputBytesPerSec: 0,
    storedBytes: 0,
    backlogBytes: 0,
  };
}

/** The gateway knows this app for real: it holds points of it, or an agent of it is connected. */
function hasReplica(s: AppStatus | undefined): boolean {
  return s !== undefined && (s.points > 0 || s.agent !== null);
}

export function registerStatus(program: Command, exit: ExitState): void {
  program
    .command('status')
    .description(
      'replication state: phase, tracker, last point, lag (RPO now), backlog, throughput, freeze time',
    )
    .argument('[app]', 'only this app')
    .option('--json', 'print JSON')
    .action(async (app: string | undefined, opts: { json?: boolean }, cmd: Command) =>
      runAction(exit, opts.json, async () => {
        if (app !== undefined) checkName('app', app, 'APP');
        const ctx = contextOf(cmd);
        const config = await ctx.config();
        const client = gatewayClient(config, 10_000);
        try {
          const names = app ? [app] : Object.keys(config.apps);
          const reported = await client.status(app);
          const byName = new Map(reported.map((s) => [s.app, s]));
          if (app && !(app in config.apps) && !hasReplica(byName.get(app))) {
            const all = await client.status();
            throw unknownAppError(app, [
              ...Object.keys(config.apps),
              ...all.filter(hasReplica).map((s) => s.app),
            ]);
          }
          const rows = [...new Set([...names, ...byName.keys()])]
            .sort()
            .map((name) => byName.get(name) ?? unprotected(name));
          // Where the agent runs in this home, its own record of its last point (which the
          // gateway cannot touch) stands beside the gateway's latest: a gap shows.
          for (const s of rows) {
            const mine = isName('app', s.app)
              ? await readLedger(join(homePaths(config.home).stateDir, 'agents', s.app)).catch(
                  () => undefined, // a malformed ledger is the agent's to report; status goes on
                )
              : undefined;
            if (mine) s.agentLastPoint = { id: mine.id, time: mine.time, label: mine.label };
          }
          if (opts.json) {
            printJson(app ? rows[0] : rows);
            return 0;
          }
          ctx.out(
            [
              'APP',
              'PHASE',
              'TRACKER',
              'LAST POINT',
              'LAG',
              'BACKLOG',
              'THROUGHPUT',
              'FREEZE',
            ].join('\t'),
          );
          for (const s of rows) {
            const trackers = Object.entries(s.trackers)
              .map(([v, t]) => `${v}:${t.kind}${t.reason ? ` (${t.reason})` : ''}`)
              .join(' ');
            ctx.out(
              [
                s.app,
                // A failed-over app shows as such, not as paused (its alerts are off either way).
                (s.protection?.state === 'failed-over' ? 'failed-over' : s.phase) +
                  (s.reason ? ` (${s.reason})` : ''),
                trackers || '-',
                s.lastPoint ? `#${s.lastPoint.id} ${s.lastPoint.time} ${s.lastPoint.label}` : '-',
                s.lagSeconds === null ? '-' : `${s.lagSeconds.toFixed(1)}s`,
                formatBytes(s.backlogBytes),
                `${formatBytes(s.throughputBytesPerSec)}/s`,
                s.lastFreezeMs === null ? '-' : `${s.lastFreezeMs}ms`,
              ].join('\t'),
            );
            const agent = s.agentLastPoint;
            if (agent && (!s.lastPoint || s.lastPoint.id < agent.id)) {
              ctx.out(
                `  ${s.app}: the agent committed point #${agent.id} (${agent.time}) but the gateway's latest is ${s.lastPoint ? `#${s.lastPoint.id}` : 'none'}: the gateway lost, rolled back or withholds points`,
              );
            } else if (agent) {
              ctx.out(
                `  agent's last point of ${s.app}: #${agent.id} ${agent.time} ${agent.label}`,
              );
            }
            if (s.lastResync) {
              ctx.out(
                `  last resync of ${s.app}/${s.lastResync.volume} at ${s.lastResync.at}: ${formatBytes(s.lastResync.bytes)} sent of ${formatBytes(s.lastResync.size)} (${s.lastResync.reason})`,
              );
            }
          }
          return 0;
        } finally {
          client.close();
        }
      }),
    );
}
