/** One app's replication state as GET /v1/status shows it: phase and why, agent, points, RPO, throughput. */
import { reversedApp } from '../../core/names.js';
import type { AppStatus, PointInfo, ProtectionState } from '../transport/protocol.js';
import type { AppRuntime } from './agent-leases.js';
import type { VolumeMeta } from './block-store.js';

export interface AppStatusInput {
  app: string;
  /** The app's points, oldest first (none when the store holds no replica). */
  points: readonly PointInfo[];
  storedBytes: number;
  /** Its runtime state; batches older than a minute are dropped from `recent`. */
  runtime: AppRuntime;
  protection: ProtectionState | undefined;
  /** The app's registered volumes (none when the store holds no replica). */
  volumes?: readonly Pick<VolumeMeta, 'id' | 'name' | 'size'>[];
  /** The store's file system, when statfs could tell. */
  store?: { freeBytes: number; totalBytes: number } | undefined;
  /** Now on the gateway's clock, ms. */
  t: number;
}

/** An app's status with nothing in it yet: no agent, no point, nothing stored or shipped. */
export function emptyAppStatus(app: string, phase: AppStatus['phase'] = 'unprotected'): AppStatus {
  return {
    app,
    phase,
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

export function appStatus({
  app,
  points,
  storedBytes,
  runtime: rt,
  protection: p,
  volumes = [],
  store,
  t,
}: AppStatusInput): AppStatus {
  const last = points[points.length - 1];
  const consistent = points.findLast((pt) => pt.label !== 'fuzzy');
  const said = rt.lease?.unchanged;
  const unchanged =
    consistent && consistent === last && said?.point === consistent.id
      ? Math.max(Date.parse(consistent.time), said.at)
      : undefined;
  rt.recent = rt.recent.filter(([at]) => t - at < 60_000);
  rt.volumeRecent = rt.volumeRecent.filter(([at]) => t - at < 60_000);
  const windowBytes = rt.recent.reduce((s, [, b]) => s + b, 0);
  const lease = rt.lease;
  let phase: AppStatus['phase'] = 'unprotected';
  let reason: string | undefined;
  if (lease) {
    const quiet = t - lease.lastSeen;
    if (lease.error) {
      phase = 'stalled';
      reason = lease.error;
    } else if (quiet > Math.max(3 * lease.intervalMs, 15_000)) {
      phase = 'stalled';
      reason = `agent not heard for ${Math.round(quiet / 1000)} s`;
    } else phase = lease.phase;
  } else if (last) {
    phase = 'stalled';
    reason = 'no agent connected since the gateway started';
  }
  const forApp = reversedApp(app);
  if (forApp !== undefined && phase === 'stalled' && !lease?.error) {
    // The way home's copy has an agent only while its app runs on a recovered server: between
    // failovers it is idle, not stalled (no alert, no red row).
    phase = 'paused';
    reason = `the way home of ${forApp}: replicated only while ${forApp} runs on a recovered server (\`dr agent --reverse --app ${forApp}\`); no agent now`;
  }
  if (p?.state === 'failed-over') {
    phase = 'paused';
    reason = `failed over by ${p.opId ?? '?'} at ${p.since ?? '?'}; replication into the DR copy is stopped`;
  }
  if (p?.state === 'paused') {
    phase = 'paused';
    const waiting = lease?.phase === 'paused' ? '; its agent is waiting' : '';
    reason = `paused by ${p.by ?? '?'} since ${p.since ?? '?'}${waiting}; resume with \`dr resume ${app}\``;
  }
  return {
    app,
    phase,
    ...(reason ? { reason } : {}),
    agent: lease
      ? {
          host: lease.host,
          pid: lease.pid,
          lastSeen: new Date(lease.lastSeen).toISOString(),
          clockOffsetMs: lease.clockOffsetMs,
        }
      : null,
    lastPoint: last ? { id: last.id, time: last.time, label: last.label } : null,
    agentLastPoint: lease?.agentLastPoint ?? null,
    lastConsistentPoint: consistent
      ? {
          id: consistent.id,
          time: consistent.time,
          label: consistent.label,
          ...(unchanged !== undefined ? { unchangedAt: new Date(unchanged).toISOString() } : {}),
        }
      : null,
    lagSeconds: consistent
      ? Math.max(0, (t - (unchanged ?? Date.parse(consistent.time))) / 1000)
      : null,
    trackers: lease?.trackers ?? {},
    lastFreezeMs: lease?.lastFreezeMs ?? null,
    lastResync: lease?.lastResync ?? null,
    ...(lease?.link ? { link: lease.link } : {}),
    points: points.length,
    bytesShipped: rt.bytesShipped,
    throughputBytesPerSec: windowBytes / 60,
    storedBytes,
    backlogBytes: lease?.backlogBytes ?? 0,
    volumes: volumes.map((v) => {
      const said = lease?.volumes[v.name];
      const received = rt.volumeRecent.reduce((n, [, id, b]) => (id === v.id ? n + b : n), 0);
      return {
        name: v.name,
        sizeBytes: v.size,
        backlogBytes: said?.backlogBytes ?? 0,
        throughputBytesPerSec: received / 60,
        ...(said?.initialSync ? { initialSync: said.initialSync } : {}),
        ...(said?.writes ? { writes: said.writes } : {}),
      };
    }),
    ...(store ? { store } : {}),
    protection: {
      state: p?.state ?? 'protected',
      ...(p?.opId !== undefined ? { opId: p.opId } : {}),
      ...(p?.by !== undefined ? { by: p.by } : {}),
      ...(p?.since !== undefined ? { since: p.since } : {}),
    },
  };
}
