import type { Redis } from 'ioredis';
import { errorMessage } from '../../core/errors.js';
import type { RpoSample } from '../../replicator/gateway/state-publisher.js';
import type { PointInfo, VolumeStatus } from '../../replicator/transport/wire-types.js';
import {
  type OpenAlert,
  type PendingApproval,
  readOpenAlerts,
  readPendingApprovals,
} from '../observe/control-state.js';
import { foldOperations, type OperationView, readRecentEvents } from '../observe/operation-log.js';
import {
  type PublishedStatus,
  readReplication,
  readRpoHistory,
  rpoNow,
} from '../observe/read-replication.js';

/** How many points of RPO history each app's chart and JSON carry, whatever the window. */
export const HISTORY_POINTS = 360;

/**
 * Cuts [from, to] into `slices` equal slices and keeps one point per slice that has samples:
 * its last sample's time and the worst (highest) RPO in it, or null when the app had no
 * consistent point at any sample of the slice. A short breach still shows at any window.
 */
export function downsample(
  samples: RpoSample[],
  from: number,
  to: number,
  slices: number,
): Array<[number, number | null]> {
  const width = Math.max(1, (to - from) / slices);
  const out: Array<[number, number | null]> = [];
  let slice = -1;
  for (const s of samples) {
    const k = Math.floor((s.time - from) / width);
    const last = out[out.length - 1];
    if (k !== slice || !last) {
      out.push([s.time, s.lagSeconds]);
      slice = k;
    } else {
      last[0] = s.time;
      last[1] = last[1] === null || s.lagSeconds === null ? null : Math.max(last[1], s.lagSeconds);
    }
  }
  return out;
}

/** Published state older than this means the gateway has stopped publishing. */
export const STALE_MS = 15_000;

export interface AppView {
  app: string;
  phase: string;
  reason?: string;
  /** Paused by someone or failed over (absent while protected): no replication alerts then. */
  protection?: 'paused' | 'failed-over';
  /** RPO now in seconds, on the page's clock; null while there is no consistent point. */
  rpoSeconds: number | null;
  /** The app's RPO objective, when dr.yaml has one. */
  objectiveSeconds?: number;
  lastPoint: PublishedStatus['lastPoint'];
  lastFreezeMs: number | null;
  /** The agent replicating it (host, pid, when the gateway last heard it); null when none is. */
  agent: PublishedStatus['agent'];
  /** Each volume's change tracker (`trace` or `scan`, and why it scans). */
  trackers: PublishedStatus['trackers'];
  backlogBytes: number;
  throughputBytesPerSec: number;
  /** Encrypted bytes the gateway stores for the app. */
  storedBytes: number;
  /** Recovery points kept. */
  pointCount: number;
  /** When the gateway last published this app's state; null when it never did. */
  publishedAt: string | null;
  stale: boolean;
  /**
   * [ms since epoch, lag seconds or null], oldest first: at most `HISTORY_POINTS` per app, each
   * the worst RPO of its slice of the window (null where the app had no consistent point).
   */
  history: Array<[number, number | null]>;
  /** The newest points (newest first); null when the gateway could not be asked. */
  points: PointInfo[] | null;
  /** Each volume: size, backlog, throughput and, during the first copy, its progress. */
  volumes: VolumeStatus[];
  /**
   * Where the app runs now: at home (its agent's host; empty when no agent is connected) or,
   * after a failover, on the recovered server that operation launched.
   */
  runsAt: { site: 'home' | 'dr'; where: string; opId?: string; since?: string };
}

/** The gateway's store: what the apps take, and its file system's room. */
export interface StoreUsage {
  /** Encrypted bytes of every app listed. */
  storedBytes: number;
  freeBytes?: number;
  totalBytes?: number;
}

export interface StatusSnapshot {
  generatedAt: string;
  windowHours: number;
  apps: AppView[];
  operations: OperationView[];
  approvals: PendingApproval[];
  alerts: OpenAlert[];
  store: StoreUsage;
  /** What could not be read, one line each; the rest of the page still shows. */
  problems: string[];
}

export interface SnapshotSources {
  redis: Redis;
  prefix: string;
  /** Apps in dr.yaml, shown even before their first replication. */
  configuredApps: () => string[];
  /** RPO objective per app in seconds, where one is set. */
  objectives?: () => Record<string, number>;
  /** An app's recovery points, from the gateway; absent, the page shows none. */
  points?: (app: string) => Promise<PointInfo[]>;
  now?: () => number;
  /** How long one source may take before the page shows it as unreadable. */
  timeoutMs?: number;
}

/** Reads everything the page shows; a source that fails becomes a line in `problems`. */
export async function collectStatus(
  {
    redis,
    prefix,
    configuredApps,
    objectives,
    points,
    now = Date.now,
    timeoutMs = 3000,
  }: SnapshotSources,
  windowHours = 6,
  pointsPerApp = 5,
): Promise<StatusSnapshot> {
  const t = now();
  const problems: string[] = [];
  // A source that does not answer in time is reported like one that fails: the page never hangs.
  const attempt = async <T>(what: string, f: () => Promise<T>, fallback: T): Promise<T> => {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([f(), late]);
    } catch (err) {
      problems.push(`${what}: ${errorMessage(err)}`);
      return fallback;
    } finally {
      clearTimeout(timer);
    }
  };
  const [replication, events, approvals, alerts] = await Promise.all([
    attempt('replication state from Redis', () => readReplication(redis, prefix), {
      statuses: [],
      bad: [],
    }),
    attempt('operations from Redis', () => readRecentEvents(redis, prefix), []),
    attempt('pending approvals from Redis', () => readPendingApprovals(redis, prefix, t), []),
    attempt('open alerts from Redis', () => readOpenAlerts(redis, prefix), []),
  ]);
  // Redis did not answer for the state: asking it again per app would only make the page slower.
  const redisAnswered = !problems.some((p) => p.startsWith('replication state from Redis'));
  for (const app of replication.bad)
    problems.push(`replication state of ${app} is not readable JSON`);
  const byApp = new Map(replication.statuses.map((s) => [s.app, s]));
  const names = [...new Set([...configuredApps(), ...byApp.keys()])].sort();
  const goals = objectives?.() ?? {};
  const since = t - windowHours * 3_600_000;
  const operations = foldOperations(events);
  const apps = await Promise.all(
    names.map(async (app): Promise<AppView> => {
      const s = byApp.get(app);
      const history = redisAnswered
        ? await attempt(
            `RPO history of ${app}`,
            () => readRpoHistory(redis, prefix, app, since),
            [],
          )
        : [];
      const pts =
        points && s
          ? await attempt(`recovery points of ${app} from the gateway`, () => points(app), null)
          : null;
      const publishedAt = s?.publishedAt ?? null;
      return {
        app,
        phase: s?.phase ?? 'unprotected',
        ...(s?.reason ? { reason: s.reason } : {}),
        ...(s?.protection?.state === 'paused' || s?.protection?.state === 'failed-over'
          ? { protection: s.protection.state }
          : {}),
        rpoSeconds: s ? rpoNow(s, t) : null,
        ...(goals[app] !== undefined ? { objectiveSeconds: goals[app] } : {}),
        lastPoint: s?.lastPoint ?? null,
        lastFreezeMs: s?.lastFreezeMs ?? null,
        agent: s?.agent ?? null,
        trackers: s?.trackers ?? {},
        backlogBytes: s?.backlogBytes ?? 0,
        throughputBytesPerSec: s?.throughputBytesPerSec ?? 0,
        storedBytes: s?.storedBytes ?? 0,
        pointCount: s?.points ?? 0,
        publishedAt,
        stale: publishedAt !== null && t - Date.parse(publishedAt) > STALE_MS,
        history: downsample(history, since, t, HISTORY_POINTS),
        points: pts ? pts.slice(-pointsPerApp).reverse() : null,
        volumes: s?.volumes ?? [],
        runsAt: runsAt(s, operations),
      };
    }),
  );
  return {
    generatedAt: new Date(t).toISOString(),
    windowHours,
    apps,
    operations: operations.slice(0, 20),
    approvals,
    alerts,
    store: storeUsage(replication.statuses),
    problems: [...new Set(problems)],
  };
}

/** Failed over: the newest succeeded failover's server; otherwise home, on the agent's host. */
function runsAt(s: PublishedStatus | undefined, ops: OperationView[]): AppView['runsAt'] {
  if (s?.protection?.state === 'failed-over') {
    const op = ops.find(
      (o) =>
        o.app === s.app &&
        o.job === 'failover' &&
        o.state === 'succeeded' &&
        (s.protection?.opId === undefined || o.opId === s.protection.opId),
    );
    const srv = op?.server;
    const where = srv
      ? `${srv.provider} server ${srv.id}${srv.endpoint ? ` at ${srv.endpoint}` : ''}`
      : 'the recovered server';
    return {
      site: 'dr',
      where,
      ...(s.protection.opId ? { opId: s.protection.opId } : {}),
      ...(s.protection.since ? { since: s.protection.since } : {}),
    };
  }
  return { site: 'home', where: s?.agent?.host ?? '' };
}

function storeUsage(statuses: PublishedStatus[]): StoreUsage {
  const room = statuses.find((s) => s.store)?.store;
  return {
    storedBytes: statuses.reduce((n, s) => n + (s.storedBytes ?? 0), 0),
    ...(room ? { freeBytes: room.freeBytes, totalBytes: room.totalBytes } : {}),
  };
}
