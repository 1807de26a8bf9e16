import { join } from 'node:path';
import type { Command } from 'commander';
import { homePaths } from '../../core/home.js';
import { checkName, isName } from '../../core/names.js';
import { formatBytes, formatDuration } from '../../core/units.js';
import { withWriteCost, writeCostLines } from '../../engine/block-size-advice.js';
import { planApps } from '../../engine/plan.js';
import { readLedger } from '../../replicator/agent/point-ledger.js';
import { CAP_HOLDS_FRACTION } from '../../replicator/agent/wire-link.js';
import { emptyAppStatus } from '../../replicator/gateway/app-status.js';
import type { AppStatus } from '../../replicator/transport/wire-types.js';
import { gatewayClient } from '../connect.js';
import { contextOf, type ExitState, printJson, runAction } from '../context.js';
import { unknownAppError } from '../unknown-app.js';
import { verbCommand } from '../verb-command.js';
import { invalidPlansError, lookupPlanOf, printPlanStatus } from './status-plan.js';

/** The gateway knows this app for real: it holds points of it, or an agent of it is connected. */
function hasReplica(s: AppStatus | undefined): boolean {
  return s !== undefined && (s.points > 0 || s.agent !== null);
}

export function registerStatus(program: Command, exit: ExitState): void {
  verbCommand(program, 'status').action(
    async (app: string | undefined, opts: { json?: boolean }, cmd: Command) =>
      runAction(exit, opts.json, async () => {
        if (app !== undefined) checkName('app', app, 'APP or PLAN');
        const ctx = contextOf(cmd);
        const config = await ctx.config();
        // A plan's name goes where an app's goes: a name that is no app of dr.yaml may be a plan.
        const plan = app && !(app in config.apps) ? await lookupPlanOf(config, app) : undefined;
        const client = gatewayClient(config, 10_000);
        try {
          if (plan?.kind === 'found') {
            const names = planApps(plan.plan);
            const byName = new Map((await client.status()).map((s) => [s.app, s]));
            const rows = names.map((name) => byName.get(name) ?? emptyAppStatus(name));
            await withAgentPoints(config.home, rows);
            return await printPlanStatus(ctx, plan.plan, rows, opts.json === true);
          }
          const names = app ? [app] : Object.keys(config.apps);
          const reported = await client.status(app);
          const byName = new Map(reported.map((s) => [s.app, s]));
          if (app && !(app in config.apps) && !hasReplica(byName.get(app))) {
            if (plan?.kind === 'invalid') throw await invalidPlansError(app, plan);
            const all = await client.status();
            throw unknownAppError(
              app,
              [...Object.keys(config.apps), ...all.filter(hasReplica).map((s) => s.app)],
              plan?.kind === 'none' ? plan.names : [],
            );
          }
          const rows = [...new Set([...names, ...byName.keys()])]
            .sort()
            .map((name) => byName.get(name) ?? emptyAppStatus(name));
          await withAgentPoints(config.home, rows);
          if (opts.json) {
            const out = rows.map(withWriteCost);
            printJson(app ? out[0] : out);
            return 0;
          }
          for (const line of statusTable(rows, Date.now())) ctx.out(line);
          return 0;
        } finally {
          client.close();
        }
      }),
  );
}

/**
 * Where the agent runs in this home, its own record of its last point (which the gateway cannot
 * touch) stands beside the gateway's latest: a gap shows.
 */
async function withAgentPoints(home: string, rows: AppStatus[]): Promise<void> {
  for (const s of rows) {
    const mine = isName('app', s.app)
      ? await readLedger(join(homePaths(home).stateDir, 'agents', s.app)).catch(
          () => undefined, // a malformed ledger is the agent's to report; status goes on
        )
      : undefined;
    if (mine) s.agentLastPoint = { id: mine.id, time: mine.time, label: mine.label };
  }
}

/** A note when the agent runs under a bandwidth cap, saying so plainly when the cap is what holds the RPO back. */
export function capNote(s: AppStatus): string | undefined {
  const l = s.link;
  if (l?.capBytesPerSec === undefined) return undefined;
  // A schedule by time of day is shown whole beside the rate in force now.
  const rate = `${formatBytes(l.capBytesPerSec)}/s${l.cap && /[\s,]/.test(l.cap) ? ` (${l.cap})` : ''}`;
  if (l.heldFraction >= CAP_HOLDS_FRACTION)
    return `bandwidth cap ${rate} holds the RPO back: batches waited for it ${Math.round(l.heldFraction * 100)}% of the time (raise it with \`throttle ${s.app} RATE\` or --max-rate)`;
  return `bandwidth cap ${rate}, ${l.compression}`;
}

/**
 * The table of `dr status`: columns padded to line up, each cell short; what needs a sentence
 * (why a tracker scans, why an app stalled, the last resync) goes on a note line under its row.
 */
export function statusTable(rows: AppStatus[], now: number): string[] {
  const head = ['APP', 'PHASE', 'TRACKER', 'LAST POINT', 'LAG', 'BACKLOG', 'THROUGHPUT', 'FREEZE'];
  const cells: string[][] = [];
  const notes: string[][] = [];
  for (const s of rows) {
    const kinds = [...new Set(Object.values(s.trackers).map((t) => t.kind))];
    const last = s.lastPoint;
    const age = last ? formatDuration(Math.max(0, now - Date.parse(last.time))) : '';
    cells.push([
      s.app,
      // A failed-over app shows as such, not as paused (its alerts are off either way).
      s.protection?.state === 'failed-over' ? 'failed-over' : s.phase,
      kinds.join(',') || '-',
      last ? `#${last.id} ${last.label}, ${age} ago` : '-',
      s.lagSeconds === null ? '-' : formatDuration(s.lagSeconds * 1000),
      formatBytes(s.backlogBytes),
      `${formatBytes(s.throughputBytesPerSec)}/s`,
      s.lastFreezeMs === null ? '-' : formatMs(s.lastFreezeMs),
    ]);
    const mine: string[] = [];
    if (s.reason) mine.push(`${s.phase}: ${s.reason}`);
    for (const [v, t] of Object.entries(s.trackers))
      if (t.reason) mine.push(`${v}: ${t.kind}, ${t.reason}`);
    if (s.lastConsistentPoint?.unchangedAt)
      mine.push(
        `no change since point #${s.lastConsistentPoint.id} as of ${s.lastConsistentPoint.unchangedAt}`,
      );
    const agent = s.agentLastPoint;
    if (agent && (!last || last.id < agent.id))
      mine.push(
        `the agent committed point #${agent.id} (${agent.time}) but the gateway's latest is ${last ? `#${last.id}` : 'none'}: the gateway lost, rolled back or withholds points`,
      );
    else if (agent) mine.push(`agent's last point: #${agent.id} ${agent.time} ${agent.label}`);
    const cap = capNote(s);
    if (cap) mine.push(cap);
    mine.push(...writeCostLines(s));
    if (s.lastResync)
      mine.push(
        `last resync of ${s.lastResync.volume} at ${s.lastResync.at}: ${formatBytes(s.lastResync.bytes)} sent of ${formatBytes(s.lastResync.size)} (${s.lastResync.reason})`,
      );
    notes.push(mine);
  }
  const widths = head.map((h, c) => Math.max(h.length, ...cells.map((r) => (r[c] ?? '').length)));
  const line = (r: string[]) =>
    r
      .map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c] ?? 0)))
      .join('  ')
      .trimEnd();
  const out = [line(head)];
  cells.forEach((r, i) => {
    out.push(line(r));
    for (const n of notes[i] ?? []) out.push(`  ${n}`);
  });
  return out;
}

/** A freeze time: 0.4ms, 11ms, 1.2s (never 11.480110999998942ms). */
export function formatMs(ms: number): string {
  return ms < 10 ? `${ms.toFixed(1)}ms` : formatDuration(ms);
}
