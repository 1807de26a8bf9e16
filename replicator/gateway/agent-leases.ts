/**
 * Which agent replicates each app: one lease per app, kept while the agent is heard from, taken
 * over by an agent that names the dead one's session (or, on its host, its pid); and the figures
 * the agent reports with its heartbeats.
 */
import { randomUUID } from 'node:crypto';
import { DrError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type {
  AgentPoint,
  AgentVolumeState,
  HeartbeatRequest,
  LinkState,
  Phase,
  ResyncState,
  SessionRequest,
  SessionResponse,
  TrackerState,
  VolumeInfo,
} from '../transport/protocol.js';
import type { VolumeMeta } from './block-store.js';
import type { GatewayStore } from './gateway-store.js';
import { named } from './request-body.js';

/**
 * The agent's cycle period the gateway assumes until a heartbeat reports the real one: not a
 * default of the agent's (config's `agent.interval` is), but a generous bound so that a new
 * session is not judged silent before its first heartbeat arrives.
 */
const UNREPORTED_INTERVAL_MS = 5000;

export interface Lease {
  sessionId: string;
  host: string;
  pid: number;
  lastSeen: number;
  phase: Phase;
  intervalMs: number;
  backlogBytes: number;
  error: string | undefined;
  /** Gateway clock minus the agent's, as the agent measured it. */
  clockOffsetMs: number;
  trackers: Record<string, TrackerState>;
  lastFreezeMs: number | null;
  lastResync: ResyncState | null;
  agentLastPoint: AgentPoint | null;
  /** Per volume, from the last heartbeat. */
  volumes: Record<string, AgentVolumeState>;
  /** The agent's compression and bandwidth cap, from its heartbeats. */
  link: LinkState | null;
  /** The agent's word that nothing changed since this point, as of `at` (gateway clock, ms). */
  unchanged: { point: number; at: number } | undefined;
}

/** What the gateway keeps of an app while it runs (nothing of it survives a restart). */
export interface AppRuntime {
  lease: Lease | undefined;
  bytesShipped: number;
  /** (time, bytes) of recent batches, for throughput over the last minute. */
  recent: Array<[number, number]>;
  /** (time, volume id, record bytes) of recent batches, for each volume's throughput. */
  volumeRecent: Array<[number, number, number]>;
  /** Retention and GC after commits, one at a time per app. */
  maintenance: Promise<void>;
}

/** The parsed heartbeat: the protocol's input with its bounded fields applied. */
type Heartbeat = Omit<HeartbeatRequest, 'lastPoint'> & { lastPoint?: AgentPoint | undefined };

export interface AgentLeases {
  /**
   * An app's runtime state. It is kept only for an app the store holds (or when `create`, for
   * the session that creates it): a request naming any other app leaves nothing behind.
   */
  runtime(app: string, create?: boolean): AppRuntime;
  /** The runtime state if there is one, without creating it. */
  peek(app: string): AppRuntime | undefined;
  /** Apps with runtime state. */
  apps(): string[];
  /** The lease of the agent naming this session, refreshed; refuses any other caller (409). */
  holds(app: string, sessionId: string | undefined): Lease;
  /** Opens a session for an agent, taking over a lapsed or named-dead lease; registers its volumes. */
  open(app: string, req: SessionRequest): Promise<SessionResponse>;
  /** Ends the session if it is the app's current one. */
  release(app: string, sessionId: string | null): void;
  /** Ends the app's lease whoever holds it (a failover). */
  drop(app: string): void;
  /** Takes in what a heartbeat reports. */
  heartbeat(app: string, hb: Heartbeat): void;
  /** Every app's maintenance still running (for a clean close). */
  maintenance(): Promise<void>;
}

export function createAgentLeases({
  store,
  log,
  now,
  leaseMs,
}: {
  store: GatewayStore;
  log: Logger;
  now: () => number;
  /** An agent not heard of for this long loses its lease. */
  leaseMs: number;
}): AgentLeases {
  const runtimes = new Map<string, AppRuntime>();
  const runtime = (app: string, create = false): AppRuntime => {
    let r = runtimes.get(app);
    if (!r) {
      r = {
        lease: undefined,
        bytesShipped: 0,
        recent: [],
        volumeRecent: [],
        maintenance: Promise.resolve(),
      };
      if (create || store.app(app)) runtimes.set(app, r);
    }
    return r;
  };

  const holds = (app: string, sessionId: string | undefined): Lease => {
    const lease = runtime(app).lease;
    if (!lease) {
      throw new DrError(
        `the gateway holds no session ${sessionId ?? '(none)'} for app ${app} (it restarted, or the session ended)`,
        { code: 'session_lost', subject: app, remedy: 'the agent opens a new session by itself' },
      );
    }
    if (lease.sessionId !== sessionId) {
      throw new DrError(
        `app ${app} is now replicated by another agent (on ${lease.host}, pid ${lease.pid})`,
        {
          code: 'agent_conflict',
          subject: app,
          remedy: 'stop one of the two agents; one agent per app',
        },
      );
    }
    lease.lastSeen = now();
    return lease;
  };

  return {
    runtime,
    peek: (app) => runtimes.get(app),
    apps: () => [...runtimes.keys()],
    holds,
    async open(app, req) {
      const held = runtimes.get(app)?.lease;
      // A lease is taken over by the agent that names its session, or, on the same host,
      // by one that names its pid as dead (it died before it could write the session down).
      const takesOver =
        !!held &&
        (held.sessionId === req.replaces ||
          (held.host === req.host && !!req.replacesPids?.includes(held.pid)));
      if (held && now() - held.lastSeen < leaseMs && !takesOver) {
        throw new DrError(
          `app ${app} is already replicated by an agent on ${held.host} (pid ${held.pid}, heard ${Math.round((now() - held.lastSeen) / 1000)} s ago)`,
          {
            code: 'agent_conflict',
            subject: app,
            remedy: `stop that agent first; a dead agent's claim lapses ${Math.round(leaseMs / 1000)} s after it was last heard`,
          },
        );
      }
      for (const v of req.volumes) named('volume', v.name, 'session volumes');
      const a = await store.ensureApp(app);
      const rt = runtime(app, true);
      const volumes = await a.registerVolumes(
        req.volumes.map((v) => ({
          name: v.name,
          size: v.size,
          blockSize: v.blockSize,
          wrappedKey: Buffer.from(v.wrappedKey, 'base64'),
        })),
      );
      rt.lease = {
        sessionId: randomUUID(),
        host: req.host,
        pid: req.pid,
        lastSeen: now(),
        phase: a.points().length === 0 ? 'initial-sync' : 'continuous',
        intervalMs: UNREPORTED_INTERVAL_MS,
        backlogBytes: 0,
        error: undefined,
        clockOffsetMs: held?.clockOffsetMs ?? 0,
        trackers: held?.trackers ?? {},
        lastFreezeMs: held?.lastFreezeMs ?? null,
        lastResync: held?.lastResync ?? null,
        volumes: {},
        agentLastPoint: held?.agentLastPoint ?? null,
        link: held?.link ?? null,
        unchanged: held?.unchanged,
      };
      log.info({ app, host: req.host, pid: req.pid, replaced: takesOver }, 'agent session opened');
      const s = a.stats();
      const points = a.points();
      return {
        sessionId: rt.lease.sessionId,
        storeId: a.storeId,
        volumes: volumes.map(volumeInfo),
        committedSeq: a.committedSeq,
        lastSeq: s.lastSeq,
        pendingSeqs: s.pendingSeqs,
        latestPoint: points[points.length - 1] ?? null,
        serverTime: now(),
        references: true,
      };
    },
    release(app, sessionId) {
      const rt = runtime(app);
      if (rt.lease && rt.lease.sessionId === sessionId) rt.lease = undefined;
    },
    drop(app) {
      runtime(app).lease = undefined;
    },
    heartbeat(app, hb) {
      const lease = holds(app, hb.sessionId);
      if (hb.phase) lease.phase = hb.phase;
      lease.intervalMs = hb.intervalMs || UNREPORTED_INTERVAL_MS;
      lease.backlogBytes = hb.backlogBytes || 0;
      lease.error = hb.error;
      if (Number.isFinite(hb.clockOffsetMs)) lease.clockOffsetMs = hb.clockOffsetMs as number;
      if (hb.trackers) lease.trackers = hb.trackers;
      if (Number.isFinite(hb.lastFreezeMs)) lease.lastFreezeMs = hb.lastFreezeMs as number;
      if (hb.lastResync) lease.lastResync = hb.lastResync;
      if (hb.volumes) lease.volumes = hb.volumes;
      if (hb.lastPoint) lease.agentLastPoint = hb.lastPoint;
      if (hb.link) lease.link = hb.link;
      const at = Date.parse(String(hb.unchanged?.at)) + (lease.clockOffsetMs || 0);
      // Only about the newest point, and never from the future: a stale word changes nothing.
      lease.unchanged =
        hb.unchanged && Number.isFinite(at)
          ? { point: hb.unchanged.point, at: Math.min(at, now()) }
          : lease.unchanged;
    },
    maintenance: async () => {
      await Promise.all([...runtimes.values()].map((r) => r.maintenance));
    },
  };
}

export function volumeInfo(v: VolumeMeta): VolumeInfo {
  return {
    name: v.name,
    id: v.id,
    size: v.size,
    blockSize: v.blockSize,
    wrappedKey: v.wrappedKey.toString('base64'),
  };
}
