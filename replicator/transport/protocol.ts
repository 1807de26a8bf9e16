/**
 * The gateway's HTTPS protocol, defined once: a zod schema for every JSON request, answer and the
 * error body. The gateway validates requests with them; the client and every reader take their
 * types from them. Binary bodies (batches, record streams, MAC lists) are described where they
 * are encoded (batch-codec.ts, gateway-client.ts).
 */
import { z } from 'zod';
import { pointRecordSchema, signatureSchema } from '../crypto/point-record.js';

export type { PointRecord } from '../crypto/point-record.js';

const count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
/** An identifier an agent sends: refused past `max` characters. */
const text = (max: number) => z.string().max(max);
/** Free text an agent reports (an error, a reason): cut at `max` so a status cannot grow without end. */
const report = (max: number) => z.string().transform((s) => s.slice(0, max));

export const consistencyLabelSchema = z.enum(['fuzzy', 'crash-consistent', 'app-consistent']);
export type ConsistencyLabel = z.infer<typeof consistencyLabelSchema>;

export const phaseSchema = z.enum(['initial-sync', 'continuous', 'paused', 'stalled']);
export type Phase = z.infer<typeof phaseSchema>;

/** A volume as the agent proposes it when a session opens. */
export const volumeProposalSchema = z.object({
  name: z.string(),
  size: count,
  blockSize: count.min(1),
  /** A freshly wrapped data key (base64), adopted only when the gateway has none for this volume. */
  wrappedKey: z.base64().min(1),
});
export type VolumeProposal = z.infer<typeof volumeProposalSchema>;

/** A volume as the gateway holds it; `id` is the u16 its records carry. */
export const volumeInfoSchema = z.object({
  name: z.string(),
  id: count.max(0xffff),
  size: count,
  blockSize: count,
  wrappedKey: z.base64(),
});
export type VolumeInfo = z.infer<typeof volumeInfoSchema>;

/** A volume at a point. */
export const pointVolumeInfoSchema = z.object({
  size: count,
  /** The agent's keyed digest of the whole volume at the point. */
  digest: z.string(),
  /** Blocks in this point's delta (changed since the point before it). */
  blocksChanged: count,
  /** Plaintext bytes of those blocks. */
  bytesChanged: count,
});
export type PointVolumeInfo = z.infer<typeof pointVolumeInfoSchema>;

/** A recovery point as the gateway lists it (and keeps it in its catalog). */
export const pointInfoSchema = z.object({
  id: count,
  /** ISO 8601. */
  time: z.string(),
  label: consistencyLabelSchema,
  seqFrom: count,
  seqTo: count,
  volumes: z.record(z.string(), pointVolumeInfoSchema),
  /** The agent's signed record of the point; absent on points made before signing. */
  record: pointRecordSchema.optional(),
  /** HMAC-SHA-256 of the record under the app's point key (hex). */
  sig: signatureSchema.optional(),
});
export type PointInfo = z.infer<typeof pointInfoSchema>;

/** GET /v1/apps/:app/points/:point */
export const pointDetailSchema = pointInfoSchema.extend({
  app: z.string(),
  volumeInfo: z.array(volumeInfoSchema),
});
export type PointDetail = z.infer<typeof pointDetailSchema>;

/** POST /v1/apps/:app/session */
export const sessionRequestSchema = z.object({
  agentId: text(200),
  host: text(255),
  pid: count,
  /** The session of a previous agent on this host that is known to be dead. */
  replaces: text(200).optional(),
  /**
   * Pids of previous agents on this host known to be dead: a lease one of them holds (under a
   * session it died before recording) is taken over too.
   */
  replacesPids: z.array(count).max(1000).optional(),
  volumes: z.array(volumeProposalSchema).max(0xffff),
});
export type SessionRequest = z.infer<typeof sessionRequestSchema>;

export const sessionResponseSchema = z.object({
  sessionId: z.string(),
  storeId: z.string(),
  volumes: z.array(volumeInfoSchema),
  committedSeq: count,
  /** Highest durable batch sequence, pending or committed. */
  lastSeq: count,
  pendingSeqs: z.array(count),
  latestPoint: pointInfoSchema.nullable(),
  /** Gateway clock at the answer, ms since epoch. */
  serverTime: z.number(),
  /**
   * The gateway takes a block identical to one it holds for the volume as a reference (a record
   * with FLAG_REF naming the source block) and refuses one it cannot resolve with code
   * `reference_refused`. Absent from older gateways: the agent then sends every block's data.
   */
  references: z.boolean().optional(),
});
export type SessionResponse = z.infer<typeof sessionResponseSchema>;

/** DELETE /v1/apps/:app/session?id=SESSION */
export const sessionReleaseSchema = z.object({ released: z.literal(true) });

/** POST /v1/apps/:app/points: the point as the agent signed it. */
export const commitRequestSchema = z.object({
  sessionId: text(200),
  /**
   * Its id, sequence range (up to the last batch acknowledged), time on the gateway's clock,
   * label, volumes and predecessor's hash.
   */
  record: pointRecordSchema,
  sig: signatureSchema,
});
export type CommitRequest = z.infer<typeof commitRequestSchema>;

/** POST /v1/apps/:app/batches (binary body, session in `x-lifeboat-session`) answers this. */
export const batchAckSchema = z.object({ seq: count, duplicate: z.boolean() });
export type BatchAck = z.infer<typeof batchAckSchema>;

export const trackerStateSchema = z.object({
  kind: z.enum(['trace', 'scan']),
  /** Why scan was chosen where trace was asked for or possible. */
  reason: report(1000).optional(),
});
export type TrackerState = z.infer<typeof trackerStateSchema>;

export const resyncStateSchema = z.object({
  volume: z.string(),
  bytes: z.number(),
  size: z.number(),
  reason: report(1000),
  at: z.string(),
});
export type ResyncState = z.infer<typeof resyncStateSchema>;

/** A point as the agent remembers committing it. */
export const agentPointSchema = z.object({
  id: count,
  time: z.string().transform((s) => s.slice(0, 40)),
  label: z.string().transform((s) => s.slice(0, 40)),
});
export type AgentPoint = z.infer<typeof agentPointSchema>;

const bytes = z.number().min(0);

/**
 * A traced volume's writes over the agent's window (the last 10 minutes): the bytes written and
 * the bytes of the blocks they dirtied at each block size counted (the volume's own among them).
 * Absent for a scan-tracked volume (the scanner cannot see writes) and from older agents.
 */
export const writeCostSchema = z.object({
  windowSeconds: z.number().positive(),
  writtenBytes: bytes,
  /** The volume's block size. */
  blockSize: z.number().int().positive(),
  dirtied: z.array(z.object({ blockSize: z.number().int().positive(), bytes })).max(8),
});
export type WriteCost = z.infer<typeof writeCostSchema>;

/** One volume as the agent tells it in heartbeats. */
export const agentVolumeStateSchema = z.object({
  /** Plain bytes of this volume in batches sent but not yet acknowledged. */
  backlogBytes: bytes,
  /** While the volume's first full copy runs: bytes read of its size. */
  initialSync: z.object({ doneBytes: bytes, sizeBytes: bytes }).optional(),
  /** What the block size costs the writes (dropped, not refused, when malformed). */
  writes: writeCostSchema.optional().catch(undefined),
});
export type AgentVolumeState = z.infer<typeof agentVolumeStateSchema>;

/** One volume of an app as the gateway publishes it. */
export const volumeStatusSchema = z.object({
  name: z.string(),
  sizeBytes: z.number(),
  /** From the agent's last heartbeat (0 without one). */
  backlogBytes: z.number(),
  /** Record bytes the gateway received for this volume over the last minute, per second. */
  throughputBytesPerSec: z.number(),
  initialSync: z.object({ doneBytes: z.number(), sizeBytes: z.number() }).optional(),
  /** From the agent's last heartbeat, for a traced volume (see writeCostSchema). */
  writes: writeCostSchema.optional(),
});
export type VolumeStatus = z.infer<typeof volumeStatusSchema>;

/** The agent's compression and bandwidth cap, from its heartbeats; fields bounded, never refused. */
export const linkStateSchema = z.object({
  /** `lz4`, `zstd:N`, or `zstd:N (adaptive)`. */
  compression: z.string().transform((s) => s.slice(0, 40)),
  /** Plain bytes over compressed bytes in the last measured window. */
  ratio: z.number().nonnegative().optional().catch(undefined),
  /** The cap in force (bytes/s); absent: none. */
  capBytesPerSec: z.number().nonnegative().optional().catch(undefined),
  /** The cap as written (a schedule by time of day, or one rate). */
  cap: z
    .string()
    .transform((s) => s.slice(0, 200))
    .optional()
    .catch(undefined),
  /** Set from chat (`throttle APP RATE`) over the agent's own setting. */
  capFrom: z.literal('chat').optional().catch(undefined),
  /** Share of the last heartbeat period that batches waited for the cap (0..1). */
  heldFraction: z
    .number()
    .catch(0)
    .transform((n) => Math.min(1, Math.max(0, n))),
});
export type LinkState = z.infer<typeof linkStateSchema>;

/** A bandwidth cap set from chat (`throttle APP RATE`); null: none, the agent's own setting holds. */
export const throttleStateSchema = z.object({
  maxRate: z.string().nullable(),
  by: z.string().optional(),
  at: z.string().optional(),
});
export type ThrottleState = z.infer<typeof throttleStateSchema>;

/** POST /v1/apps/:app/throttle: the cap (checked again by the gateway) and who sets it. */
export const throttleRequestSchema = z.object({
  maxRate: z.string().max(300, 'maxRate is at most 300 characters').nullable(),
  by: z
    .string({ error: 'a throttle needs "by": who sets it (1-200 characters)' })
    .trim()
    .min(1, 'a throttle needs "by": who sets it (1-200 characters)')
    .max(200, 'a throttle needs "by": who sets it (1-200 characters)'),
});
export type ThrottleRequest = z.infer<typeof throttleRequestSchema>;

/** POST /v1/apps/:app/heartbeat. Only the session is required: the rest updates what is sent. */
export const heartbeatRequestSchema = z.object({
  sessionId: text(200),
  phase: phaseSchema.optional(),
  intervalMs: z.number().optional(),
  backlogBytes: z.number().optional(),
  error: report(4000).optional(),
  /** Agent clock when sent, ms since epoch. */
  sentAt: z.number().optional(),
  /** Gateway clock minus agent clock, measured by the agent from heartbeat round trips. */
  clockOffsetMs: z.number().optional(),
  trackers: z.record(z.string(), trackerStateSchema).optional(),
  lastFreezeMs: z.number().optional(),
  lastResync: resyncStateSchema.optional(),
  /**
   * The agent's last cycle found nothing changed since this point (its newest), at `at` (agent
   * clock, ISO): it committed no new point, and the point is still the state now. The gateway
   * counts RPO from it when that point is consistent.
   */
  unchanged: z.object({ point: z.number().int(), at: z.string() }).optional(),
  /** The last point the agent committed, as it signed it. */
  lastPoint: agentPointSchema.optional(),
  /** Per volume (at most 64): plain bytes not yet acknowledged, and the first copy's progress. */
  volumes: z
    .record(z.string().max(64), agentVolumeStateSchema)
    .refine((v) => Object.keys(v).length <= 64, { error: 'at most 64 volumes' })
    .optional(),

  /** Compression and bandwidth cap as the agent applies them (dropped, not refused, when malformed). */
  link: linkStateSchema.optional().catch(undefined),
});
export type HeartbeatRequest = z.input<typeof heartbeatRequestSchema>;

export const heartbeatResponseSchema = z.object({
  serverTime: z.number(),
  /** The cap set from chat for the app; absent from older gateways. */
  throttle: throttleStateSchema.optional(),
});
export type HeartbeatResponse = z.infer<typeof heartbeatResponseSchema>;

export const protectionNameSchema = z.enum(['protected', 'failed-over', 'paused']);

/**
 * Whether the DR copy of an app is a replica (the agent writes it), paused by someone (the agent
 * waits), or, after a failover, production. GET/POST /v1/apps/:app/protection answer this.
 */
export const protectionStateSchema = z.object({
  state: protectionNameSchema,
  /** The operation that failed the app over. */
  opId: z.string().optional(),
  /** Who paused it (a person or `cli:NAME`). */
  by: z.string().optional(),
  since: z.string().optional(),
  /**
   * In a request: change only from this state (`{"state":"protected","from":"paused"}` resumes,
   * and is refused for a failed-over app, which only failback protects again).
   */
  from: z.literal('paused').optional(),
  /** In an answer: the app was in that state already; nothing changed. */
  unchanged: z.boolean().optional(),
});
export type ProtectionState = z.infer<typeof protectionStateSchema>;

const needsBy = 'a pause needs "by": who pauses (1-200 characters)';

/** POST /v1/apps/:app/protection: each refusal says what to send instead. */
export const protectionRequestSchema = z
  .object({
    state: z.enum(protectionNameSchema.options, {
      error: 'protection state must be failed-over, paused or protected',
    }),
    opId: z.string().max(200).optional(),
    by: z.string({ error: needsBy }).optional(),
    from: z.literal('paused', { error: '"from" can only be "paused"' }).optional(),
  })
  .superRefine((r, ctx) => {
    if (r.state === 'paused' && (!r.by?.trim() || r.by.length > 200))
      ctx.addIssue({ code: 'custom', message: needsBy, path: ['by'] });
  });
export type ProtectionRequest = z.infer<typeof protectionRequestSchema>;

/** The error body of every non-2xx JSON answer. */
export const errorBodySchema = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    subject: z.string().optional(),
    /** One sentence telling the caller how to fix it. */
    remedy: z.string().optional(),
  }),
});
export type ErrorBody = z.infer<typeof errorBodySchema>;

/** One app's replication state, as GET /v1/status lists it. */
export const appStatusSchema = z.object({
  app: z.string(),
  phase: z.union([phaseSchema, z.literal('unprotected')]),
  reason: z.string().optional(),
  agent: z
    .object({ host: z.string(), pid: z.number(), lastSeen: z.string(), clockOffsetMs: z.number() })
    .nullable(),
  lastPoint: z.object({ id: count, time: z.string(), label: consistencyLabelSchema }).nullable(),
  /**
   * The last point the agent says it committed (from its heartbeats): a gateway showing an older
   * lastPoint than this lost or withholds points. `dr status` on the agent's host also reads the
   * agent's own ledger, which the gateway cannot touch.
   */
  agentLastPoint: agentPointSchema.nullable().optional(),
  /**
   * The newest point labelled app- or crash-consistent. `unchangedAt`: its agent found nothing
   * changed since it as late as this (no new point was needed); RPO counts from there.
   */
  lastConsistentPoint: z
    .object({
      id: count,
      time: z.string(),
      label: consistencyLabelSchema,
      unchangedAt: z.string().optional(),
    })
    .nullable(),
  /**
   * Now minus the time of the newest durable consistent point, or of its `unchangedAt` (RPO now);
   * null when there is none.
   */
  lagSeconds: z.number().nullable(),
  trackers: z.record(z.string(), trackerStateSchema),
  lastFreezeMs: z.number().nullable(),
  lastResync: resyncStateSchema.nullable(),
  points: count,
  bytesShipped: z.number(),
  throughputBytesPerSec: z.number(),
  storedBytes: z.number(),
  backlogBytes: z.number(),
  /** The agent's compression and bandwidth cap, from its heartbeats; absent before the first. */
  link: linkStateSchema.optional(),
  /**
   * Whether the DR copy is a replica (`protected`), paused by someone, or production after a
   * failover; the RPO monitor raises no replication alert unless protected. Absent from gateways
   * older than this field.
   */
  protection: protectionStateSchema
    .pick({ state: true, opId: true, by: true, since: true })
    .optional(),
  /** Each registered volume: size, backlog, throughput, first-copy progress. */
  volumes: z.array(volumeStatusSchema).optional(),
  /** The gateway store's file system (shared by every app); absent where statfs fails. */
  store: z.object({ freeBytes: z.number(), totalBytes: z.number() }).optional(),
  /**
   * Several gateways on one bucket: whether this gateway serves the app now (holds its lease).
   * A gateway that does not shows no agent and no points for it: ask the one that does.
   */
  served: z.boolean().optional(),
});
export type AppStatus = z.infer<typeof appStatusSchema>;
