/** The lines of `status`: each app's published replication state, with the RPO now. */
import { formatBytes } from '../core/units.js';
import type { AppStatus } from '../replicator/transport/wire-types.js';
import { withWriteCost, writeCostLines } from './block-size-advice.js';
import type { EngineContext } from './engine-context.js';

/** An app's replication state: as the gateway published it to Redis, or as it answers `dr status`. */
export type AppState = AppStatus & { publishedAt?: string };

/** An app's row of `status`: its replication state, with the RPO now. */
export type StatusRow = AppState & { rpoSeconds?: number };

/** The replication state the gateway published (the hash `replicationKey`), by app. */
export function publishedStates(raw: Record<string, string>): Map<string, AppState> {
  return new Map(Object.entries(raw).map(([app, text]) => [app, JSON.parse(text) as AppState]));
}

/**
 * One line per app as `status` words it, and the rows of the apps that have state. Chat reads the
 * state the gateway published to Redis; `dr status PLAN` passes what the gateway answers.
 */
export function statusLines(
  ctx: Pick<EngineContext, 'now'>,
  names: readonly string[],
  states: ReadonlyMap<string, AppState>,
  /** Add each volume's write amplification and block size advice (`status APP`). */
  volumes = false,
): { rows: StatusRow[]; lines: string[] } {
  const rows: StatusRow[] = [];
  const lines: string[] = [];
  for (const name of names) {
    const s = states.get(name);
    if (!s) {
      lines.push(
        `${name}: no replication state published (is \`dr gateway\` running with REDIS_URL?)`,
      );
      continue;
    }
    const rpo = s.lastConsistentPoint
      ? Math.max(
          0,
          (ctx.now() -
            Date.parse(s.lastConsistentPoint.unchangedAt ?? s.lastConsistentPoint.time)) /
            1000,
        )
      : undefined;
    rows.push({ ...withWriteCost(s), ...(rpo !== undefined ? { rpoSeconds: rpo } : {}) });
    lines.push(
      `${name}: ${s.phase}${s.reason ? ` (${s.reason})` : ''}, RPO ${rpo === undefined ? '-' : `${rpo.toFixed(1)} s`}, last point ${s.lastPoint ? `#${s.lastPoint.id} ${s.lastPoint.label}` : '-'}, backlog ${formatBytes(s.backlogBytes)}${agentPointNote(s)}`,
    );
    if (volumes) lines.push(...writeCostLines(s, `${name}/`));
  }
  return { rows, lines };
}

/**
 * The agent's own last point beside the gateway's: a gateway whose latest is older than what its
 * agent committed lost, rolled back or withholds points, which the gateway alone cannot hide.
 */
function agentPointNote(s: AppStatus): string {
  const agent = s.agentLastPoint;
  if (!agent) return '';
  if (!s.lastPoint || s.lastPoint.id < agent.id)
    return `; WARNING: the agent committed point #${agent.id} but the gateway's latest is ${s.lastPoint ? `#${s.lastPoint.id}` : 'none'} (lost, rolled back or withheld)`;
  return `, agent's last point #${agent.id}`;
}
