/**
 * The JSON shapes agent, CLI and gateway exchange over HTTPS. Binary bodies
 * (batches, record streams, MAC lists) are described where they are encoded.
 */
import type { PointRecord } from '../crypto/point-record.js';

export type { PointRecord } from '../crypto/point-record.js';
export type ConsistencyLabel = 'app-consistent' | 'crash-consistent' | 'fuzzy';
export type Phase = 'initial-sync' | 'continuous' | 'paused' | 'stalled';

export interface VolumeProposal {
  name: string;
  size: number;
  blockSize: number;
  /** A freshly wrapped data key, adopted only when the gateway has none for this volume. */
  wrappedKey: string;
}

export interface VolumeInfo {
  name: string;
  id: number;
  size: number;
  blockSize: number;
  wrappedKey: string;
}

export interface SessionRequest {
  agentId: string;
  host: string;
  pid: number;
  /** The session of a previous agent on this host that is known to be dead. */
  replaces?: string;
  /**
   * Pids of previous agents on this host known to be dead: a lease one of them
   * holds (under a session it died before recording) is taken over too.
   */
  replacesPids?: number[];
  volumes: VolumeProposal[];
}

export interface SessionResponse {
  sessionId: string;
  storeId: string;
  volumes: VolumeInfo[];
  committedSeq: number;
  /** Highest durable batch sequence, pending or committed. */
  lastSeq: number;
  pendingSeqs: number[];
  latestPoint: PointInfo | null;
  /** Gateway clock at the answer, ms since epoch. */
  serverTime: number;
}

export interface PointVolumeInfo {
  size: number;
  digest: string;
  blocksChanged: number;
  bytesChanged: number;
}

export interface PointInfo {
  id: number;
  time: string;
  label: ConsistencyLabel;
  seqFrom: number;
  seqTo: number;
  volumes: Record<string, PointVolumeInfo>;
  /** The agent's signed record of the point; absent on points made before signing. */
  record?: PointRecord;
  /** HMAC-SHA-256 of the record under the app's point key (hex). */
  sig?: string;
}

export interface PointDetail extends PointInfo {
  app: string;
  volumeInfo: VolumeInfo[];
}

export interface CommitRequest {
  sessionId: string;
  /**
   * The point as the agent signed it: its id, sequence range (up to the last batch
   * acknowledged), time on the gateway's clock, label, volumes and predecessor's hash.
   */
  record: PointRecord;
  sig: string;
}

export interface BatchAck {
  seq: number;
  duplicate: boolean;
}

export interface TrackerState {
  kind: 'trace' | 'scan';
  /** Why scan was chosen where trace was asked for or possible. */
  reason?: string;
}

export interface ResyncState {
  volume: string;
  bytes: number;
  size: number;
  reason: string;
  at: string;
}

export interface HeartbeatRequest {
  sessionId: string;
  phase: Phase;
  intervalMs: number;
  backlogBytes: number;
  error?: string;
  /** Agent clock when sent, ms since epoch. */
  sentAt: number;
  /** Gateway clock minus agent clock, measured by the agent from heartbeat round trips. */
  clockOffsetMs?: number;
  trackers?: Record<string, TrackerState>;
  lastFreezeMs?: number;
  lastResync?: ResyncState;
  /**
   * The agent's last cycle found nothing changed since this point (its newest), at `at` (agent
   * clock, ISO): it committed no new point, and the point is still the state now. The gateway
   * counts RPO from it when that point is consistent.
   */
  unchanged?: { point: number; at: string };
  /** The last point the agent committed, as it signed it. */
  lastPoint?: AgentPoint;
  /** Compression and bandwidth cap as the agent applies them. */
  link?: LinkState;
}

/** A bandwidth cap set from chat (`throttle APP RATE`); null: none, the agent's own setting holds. */
export interface ThrottleState {
  maxRate: string | null;
  by?: string;
  at?: string;
}

/** The gateway's answer to a heartbeat. */
export interface HeartbeatAnswer {
  serverTime: number;
  /** The cap set from chat for the app, absent from older gateways. */
  throttle?: ThrottleState;
}

/** The agent's compression and bandwidth cap, from its heartbeats. */
export interface LinkState {
  /** `lz4`, `zstd:N`, or `zstd:N (adaptive)`. */
  compression: string;
  /** Plain bytes over compressed bytes in the last measured window. */
  ratio?: number;
  /** The cap in force (bytes/s); absent: none. */
  capBytesPerSec?: number;
  /** The cap as written (a schedule by time of day, or one rate). */
  cap?: string;
  /** Set from chat (`throttle APP RATE`) over the agent's own setting. */
  capFrom?: 'chat';
  /** Share of the last heartbeat period that batches waited for the cap (0..1). */
  heldFraction: number;
}

/** A point as the agent remembers committing it. */
export interface AgentPoint {
  id: number;
  time: string;
  label: string;
}

export interface AppStatus {
  app: string;
  phase: Phase | 'unprotected';
  reason?: string;
  agent: { host: string; pid: number; lastSeen: string; clockOffsetMs: number } | null;
  lastPoint: { id: number; time: string; label: ConsistencyLabel } | null;
  /**
   * The last point the agent says it committed (from its heartbeats): a gateway showing an
   * older lastPoint than this lost or withholds points. `dr status` on the agent's host
   * also reads the agent's own ledger, which the gateway cannot touch.
   */
  agentLastPoint?: AgentPoint | null;
  /**
   * The newest point labelled app- or crash-consistent. `unchangedAt`: its agent found nothing
   * changed since it as late as this (no new point was needed); RPO counts from there.
   */
  lastConsistentPoint: {
    id: number;
    time: string;
    label: ConsistencyLabel;
    unchangedAt?: string;
  } | null;
  /**
   * Now minus the time of the newest durable consistent point, or of its `unchangedAt` (RPO
   * now); null when there is none.
   */
  lagSeconds: number | null;
  trackers: Record<string, TrackerState>;
  lastFreezeMs: number | null;
  lastResync: ResyncState | null;
  points: number;
  bytesShipped: number;
  throughputBytesPerSec: number;
  storedBytes: number;
  backlogBytes: number;
  /** The agent's compression and bandwidth cap, from its heartbeats; absent before the first. */
  link?: LinkState;
  /**
   * Whether the DR copy is a replica (`protected`), paused by someone, or production after a
   * failover; the RPO monitor raises no replication alert unless protected. Absent from gateways
   * older than this field.
   */
  protection?: Pick<ProtectionState, 'state' | 'opId' | 'by' | 'since'>;
}

/**
 * Whether the DR copy of an app is a replica (the agent writes it), paused by someone (the agent
 * waits), or, after a failover, production.
 */
export interface ProtectionState {
  state: 'protected' | 'failed-over' | 'paused';
  /** The operation that failed the app over. */
  opId?: string;
  /** Who paused it (a person or `cli:NAME`). */
  by?: string;
  since?: string;
  /**
   * In a request: change only from this state (`{"state":"protected","from":"paused"}` resumes,
   * and is refused for a failed-over app, which only failback protects again).
   */
  from?: 'paused';
  /** In an answer: the app was in that state already; nothing changed. */
  unchanged?: boolean;
}
