/** What the agent tells the gateway about itself: phase, last error, backlog, freeze, resync, points, write cost. */
import type { Phase, PointInfo } from '../transport/wire-types.js';
import type { OpenVolume, ResyncReport } from './cut.js';
import type { HeartbeatStatus } from './gateway-session.js';
import type { LedgerEntry } from './point-ledger.js';

/** The agent's state as status shows it, changed by the parts as they go and sent with each heartbeat. */
export class AgentStatus {
  phase: Phase = 'initial-sync';
  /** Why the last cycle or call failed; cleared by the next success. */
  lastError: string | undefined;
  /** Bytes on the wire, not yet acknowledged. */
  backlogBytes = 0;
  /** Per volume: plain bytes in batches not yet acknowledged. */
  readonly volumeBacklog = new Map<string, number>();
  /** Per volume, while its first full copy runs: bytes read of its size. */
  readonly initialSync = new Map<string, { doneBytes: number; sizeBytes: number }>();
  lastFreezeMs: number | undefined;
  lastResync: ResyncReport | undefined;
  /** The newest point on the gateway. */
  newestPoint: PointInfo | undefined;
  /** The last cycle found no change since `newestPoint`, at this agent time. */
  unchangedAt: number | undefined;

  /** The heartbeat body of this moment. */
  heartbeat(
    intervalMs: number,
    volumes: readonly OpenVolume[],
    ledger: LedgerEntry | undefined,
    now: number = Date.now(),
  ): HeartbeatStatus {
    const r = this.lastResync;
    return {
      phase: this.phase,
      intervalMs,
      backlogBytes: this.backlogBytes,
      ...(this.lastError ? { error: this.lastError } : {}),
      trackers: Object.fromEntries(volumes.map((v) => [v.name, v.tracking.info])),
      volumes: Object.fromEntries(
        volumes.map((v) => {
          const sync = this.phase === 'initial-sync' ? this.initialSync.get(v.name) : undefined;
          const writes = v.tracking.writeCost(now);
          return [
            v.name,
            {
              backlogBytes: this.volumeBacklog.get(v.name) ?? 0,
              ...(sync ? { initialSync: sync } : {}),
              ...(writes ? { writes } : {}),
            },
          ];
        }),
      ),
      ...(this.lastFreezeMs !== undefined ? { lastFreezeMs: this.lastFreezeMs } : {}),
      ...(r ? { lastResync: { ...r, at: new Date(r.at).toISOString() } } : {}),
      ...(ledger ? { lastPoint: { id: ledger.id, time: ledger.time, label: ledger.label } } : {}),
      ...(this.unchangedAt !== undefined && this.newestPoint
        ? {
            unchanged: {
              point: this.newestPoint.id,
              at: new Date(this.unchangedAt).toISOString(),
            },
          }
        : {}),
    };
  }
}
