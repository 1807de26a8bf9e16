import { randomUUID } from 'node:crypto';
import { mkdir, readFile, statfs } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import type { TlsOptions } from 'node:tls';
import { z } from 'zod';
import { writeFileAtomic } from '../../core/atomic-file.js';
import { DrError, errorMessage, isDrError, systemCode } from '../../core/errors.js';
import { type Logger, silentLog } from '../../core/log.js';
import { checkName, type NameKind, type NameOf } from '../../core/names.js';
import { pointRecordSchema, signatureSchema } from '../crypto/point-record.js';
import { decodeBatch } from '../transport/batch-codec.js';
import type {
  AgentPoint,
  AppStatus,
  CommitRequest,
  HeartbeatRequest,
  LinkState,
  Phase,
  ProtectionState,
  ResyncState,
  SessionRequest,
  SessionResponse,
  TrackerState,
  VolumeInfo,
} from '../transport/wire-types.js';
import type { AppStore, BlockStore, IndexEntry, VolumeMeta } from './block-store.js';
import type { RetentionRules } from './retention.js';
import { ThrottleStore } from './throttle-store.js';

export interface GatewayOptions {
  store: BlockStore;
  /** HOST:PORT to listen on; port 0 picks a free one. */
  listen: string;
  tls: TlsOptions;
  retention: RetentionRules;
  /** New batches are refused (507) while the store's disk has less free space than this. */
  minFreeSpace?: number;
  /** An agent that has not been heard of for this long loses its lease on the app. */
  leaseMs?: number;
  /** Largest batch body accepted. */
  maxBatchBytes?: number;
  log?: Logger;
  now?: () => number;
  /** Told of each batch made durable (or recognised as a duplicate), for metrics. */
  onBatch?: (batch: BatchReceived) => void;
}

/** A batch the gateway acknowledged: its size on the wire and the time from request to durable ack. */
export interface BatchReceived {
  app: string;
  bytes: number;
  ms: number;
  duplicate: boolean;
}

export interface Gateway {
  server: Server;
  /** HOST:PORT actually bound. */
  address: string;
  /** Replication state of every app the gateway knows. */
  statuses(): AppStatus[];
  close(): Promise<void>;
}

interface Lease {
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
  link: LinkState | null;
  /** The agent's word that nothing changed since this point, as of `at` (gateway clock, ms). */
  unchanged: { point: number; at: number } | undefined;
}

interface AppRuntime {
  lease: Lease | undefined;
  bytesShipped: number;
  /** (time, bytes) of recent batches, for throughput over the last minute. */
  recent: Array<[number, number]>;
  maintenance: Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly err: DrError,
  ) {
    super(err.message);
  }
}

const commitSchema = z.object({
  sessionId: z.string().max(200),
  record: pointRecordSchema,
  sig: signatureSchema,
});

const badRequest = (message: string, remedy: string) =>
  new HttpError(400, new DrError(message, { code: 'bad_request', remedy }));

/** The DR-site receiver: takes encrypted batches, makes them durable, commits recovery points. */
export async function createGateway({
  store,
  listen,
  tls,
  retention,
  minFreeSpace = 64 * 1024 * 1024,
  leaseMs = 30_000,
  maxBatchBytes = 64 * 1024 * 1024,
  log = silentLog,
  now = Date.now,
  onBatch,
}: GatewayOptions): Promise<Gateway> {
  const runtimes = new Map<string, AppRuntime>();
  // statfs once a second at most: a batch is 4 MiB, the reserve is far larger.
  let freeCache: { at: number; bytes: number | undefined } | undefined;
  const freeSpace = async (): Promise<number | undefined> => {
    if (!freeCache || now() - freeCache.at > 1000)
      freeCache = { at: now(), bytes: await freeBytes(store.dir) };
    return freeCache.bytes;
  };
  /**
   * An app's runtime state. It is kept only for an app the store holds (or when `create`, for
   * the session that creates it): a request naming any other app leaves nothing behind.
   */
  const runtime = (app: string, create = false): AppRuntime => {
    let r = runtimes.get(app);
    if (!r) {
      r = { lease: undefined, bytesShipped: 0, recent: [], maintenance: Promise.resolve() };
      if (create || store.app(app)) runtimes.set(app, r);
    }
    return r;
  };

  /**
   * Failed-over apps, persisted beside the store: after a failover the DR copy
   * is production, and its agent must not write into it any more.
   */
  const protectionFile = (app: string) => join(store.dir, 'apps', app, 'protection.json');
  const throttles = new ThrottleStore(store.dir, now);
  const protection = new Map<string, ProtectionState>();
  const protectionOf = async (app: string): Promise<ProtectionState> => {
    let p = protection.get(app);
    if (!p) {
      try {
        p = JSON.parse(await readFile(protectionFile(app), 'utf8')) as ProtectionState;
      } catch (err) {
        if (systemCode(err) !== 'ENOENT') throw err;
        p = { state: 'protected' };
      }
      if (store.app(app)) protection.set(app, p); // names of apps not held are not remembered
    }
    return p;
  };
  /** Refuses the agent's calls while the app is failed over or paused, naming why and the way on. */
  const refuseUnlessProtected = async (app: string, { whilePaused = false } = {}) => {
    const p = await protectionOf(app);
    if (p.state === 'paused' && !whilePaused) {
      throw new HttpError(
        409,
        new DrError(
          `replication of app ${app} is paused (by ${p.by ?? '?'} since ${p.since ?? '?'})`,
          {
            code: 'app_paused',
            subject: app,
            remedy: `resume it with \`dr resume ${app}\` or \`resume ${app}\` in chat; a running agent waits and goes on by itself`,
          },
        ),
      );
    }
    if (p.state !== 'failed-over') return;
    throw new HttpError(
      409,
      new DrError(
        `app ${app} was failed over (operation ${p.opId ?? '?'} at ${p.since ?? '?'}): its DR copy is production now, so replication into it is refused`,
        {
          code: 'app_failed_over',
          subject: app,
          remedy: `stop this agent; fail back with \`dr failback ${app}\` to protect the original site again`,
        },
      ),
    );
  };
  const failedOverRefusal = (app: string, p: ProtectionState, what: string) =>
    new HttpError(
      409,
      new DrError(
        `cannot ${what} app ${app}: it was failed over (operation ${p.opId ?? '?'} at ${p.since ?? '?'}) and its DR copy is production now`,
        {
          code: 'app_failed_over',
          subject: app,
          remedy: `fail back with \`dr failback ${app}\` to protect the original site again`,
        },
      ),
    );
  const setProtection = async (app: string, req: ProtectionState): Promise<ProtectionState> => {
    if (
      typeof req !== 'object' ||
      req === null ||
      (req.state !== 'failed-over' && req.state !== 'protected' && req.state !== 'paused')
    ) {
      throw badRequest(
        'protection state must be failed-over, paused or protected',
        'send {"state":"paused","by":"NAME"} or {"state":"protected","from":"paused"}',
      );
    }
    if (req.from !== undefined && req.from !== 'paused')
      throw badRequest('"from" can only be "paused"', 'send {"state":"protected","from":"paused"}');
    appStore(app); // only an app the gateway holds a replica of has a protection state
    const cur = await protectionOf(app);
    let next: ProtectionState;
    if (req.state === 'paused') {
      if (typeof req.by !== 'string' || !req.by.trim() || req.by.length > 200)
        throw badRequest(
          'a pause needs "by": who pauses (1-200 characters)',
          'send {"state":"paused","by":"NAME"}',
        );
      if (cur.state === 'failed-over') throw failedOverRefusal(app, cur, 'pause');
      if (cur.state === 'paused') return { ...cur, unchanged: true };
      next = { state: 'paused', by: req.by.trim(), since: new Date(now()).toISOString() };
    } else if (req.state === 'protected' && req.from === 'paused') {
      if (cur.state === 'failed-over') throw failedOverRefusal(app, cur, 'resume');
      if (cur.state !== 'paused')
        throw new HttpError(
          409,
          new DrError(`replication of app ${app} is not paused`, {
            code: 'not_paused',
            subject: app,
            remedy: `nothing to resume; pause it first with \`dr pause ${app}\``,
          }),
        );
      next = { state: 'protected' };
    } else
      next =
        req.state === 'failed-over'
          ? {
              state: 'failed-over',
              ...(req.opId ? { opId: String(req.opId) } : {}),
              since: new Date(now()).toISOString(),
            }
          : { state: 'protected' };
    await mkdir(dirname(protectionFile(app)), { recursive: true });
    await writeFileAtomic(protectionFile(app), JSON.stringify(next));
    protection.set(app, next);
    const rt = runtime(app);
    if (next.state === 'failed-over') rt.lease = undefined; // the agent's next call is refused with the reason
    log.warn({ app, ...next }, 'protection state changed');
    return next;
  };

  const appStore = (app: string): AppStore => {
    const a = store.app(app);
    if (!a) {
      throw new HttpError(
        404,
        new DrError(`the gateway holds no replica of app ${JSON.stringify(app)}`, {
          code: 'app_unknown',
          subject: app,
          remedy: `start replicating it with \`dr agent --app ${app}\``,
        }),
      );
    }
    return a;
  };

  const holdsLease = (app: string, sessionId: string | undefined): Lease => {
    const lease = runtime(app).lease;
    if (!lease) {
      throw new HttpError(
        409,
        new DrError(
          `the gateway holds no session ${sessionId ?? '(none)'} for app ${app} (it restarted, or the session ended)`,
          {
            code: 'session_lost',
            subject: app,
            remedy: 'the agent opens a new session by itself',
          },
        ),
      );
    }
    if (lease.sessionId !== sessionId) {
      throw new HttpError(
        409,
        new DrError(
          `app ${app} is now replicated by another agent (on ${lease.host}, pid ${lease.pid})`,
          {
            code: 'agent_conflict',
            subject: app,
            remedy: 'stop one of the two agents; one agent per app',
          },
        ),
      );
    }
    lease.lastSeen = now();
    return lease;
  };

  async function openSession(app: string, req: SessionRequest): Promise<SessionResponse> {
    await refuseUnlessProtected(app);
    if (!Array.isArray(req.volumes) || typeof req.agentId !== 'string') {
      throw badRequest(
        'session request needs agentId and volumes',
        'upgrade the agent to match the gateway',
      );
    }
    const held = runtimes.get(app)?.lease;
    // A lease is taken over by the agent that names its session, or, on the same host,
    // by one that names its pid as dead (it died before it could write the session down).
    const takesOver =
      !!held &&
      (held.sessionId === req.replaces ||
        (held.host === String(req.host) &&
          Array.isArray(req.replacesPids) &&
          req.replacesPids.includes(held.pid)));
    if (held && now() - held.lastSeen < leaseMs && !takesOver) {
      throw new HttpError(
        409,
        new DrError(
          `app ${app} is already replicated by an agent on ${held.host} (pid ${held.pid}, heard ${Math.round((now() - held.lastSeen) / 1000)} s ago)`,
          {
            code: 'agent_conflict',
            subject: app,
            remedy: `stop that agent first; a dead agent's claim lapses ${Math.round(leaseMs / 1000)} s after it was last heard`,
          },
        ),
      );
    }
    for (const v of req.volumes) named('volume', v?.name, 'session volumes');
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
      host: String(req.host),
      pid: Number(req.pid),
      lastSeen: now(),
      phase: a.points().length === 0 ? 'initial-sync' : 'continuous',
      intervalMs: 5000,
      backlogBytes: 0,
      error: undefined,
      clockOffsetMs: held?.clockOffsetMs ?? 0,
      trackers: held?.trackers ?? {},
      lastFreezeMs: held?.lastFreezeMs ?? null,
      lastResync: held?.lastResync ?? null,
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
    };
  }

  async function receiveBatch(app: string, sessionId: string | undefined, body: Buffer[]) {
    await refuseUnlessProtected(app);
    const a = appStore(app);
    holdsLease(app, sessionId);
    let decoded: ReturnType<typeof decodeBatch>;
    try {
      decoded = decodeBatch(body);
    } catch (err) {
      throw badRequest(
        `batch refused: ${errorMessage(err)}`,
        'the agent resends it; nothing was stored',
      );
    }
    const vols = new Map(a.volumes().map((v) => [v.id, v]));
    for (const e of decoded.entries) {
      const v = vols.get(e.volumeId);
      if (!v || e.block * v.blockSize >= Math.max(v.size, 1)) {
        throw badRequest(
          `batch ${decoded.seq} names block ${e.block} of unknown volume #${e.volumeId}`,
          'restart the agent so it registers its volumes',
        );
      }
    }
    const free = await freeSpace();
    if (free !== undefined && free < minFreeSpace) {
      throw new HttpError(
        507,
        new DrError(
          `gateway store ${store.dir} has ${free} bytes free, below gateway.minFreeSpace`,
          {
            code: 'gateway_full',
            subject: store.dir,
            remedy:
              'free space on the gateway disk or lower the retention; the agent keeps the batch and retries',
          },
        ),
      );
    }
    let ack: { duplicate: boolean };
    try {
      ack = await a.appendBatch(decoded.seq, body, decoded);
    } catch (err) {
      if (isDrError(err, 'gateway_full')) throw new HttpError(507, err);
      throw err;
    }
    const rt = runtime(app);
    if (!ack.duplicate) {
      rt.bytesShipped += decoded.length;
      rt.recent.push([now(), decoded.length]);
    }
    return { seq: decoded.seq, duplicate: ack.duplicate };
  }

  async function commit(app: string, body: unknown) {
    await refuseUnlessProtected(app);
    const a = appStore(app);
    const parsed = commitSchema.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw badRequest(
        `commit refused: ${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid'}; a commit carries the agent's signed record of the point`,
        'upgrade the agent to match the gateway',
      );
    }
    const req = parsed.data as CommitRequest;
    holdsLease(app, req.sessionId);
    const { record, sig } = req;
    if (record.app !== app)
      throw badRequest(
        `the signed record is for app ${record.app}, not ${app}`,
        'commit to the app the record names',
      );
    // Everything the point says comes from the record the agent signed (its time already on our clock).
    const point = await a.commitPoint({
      upToSeq: record.seqTo,
      label: record.label,
      time: new Date(record.time),
      volumes: record.volumes,
      signed: { record, sig },
    });
    const rt = runtime(app);
    if (rt.lease) rt.lease.phase = 'continuous';
    // Retention and GC run after the answer, one at a time per app.
    rt.maintenance = rt.maintenance
      .then(async () => {
        const { removed } = await a.applyRetention(new Date(now()), retention);
        if (removed.length > 0) {
          const gc = await a.collectGarbage();
          log.info({ app, removed, ...gc }, 'retention applied');
        }
      })
      .catch((err) =>
        log.error(
          { app, err: errorMessage(err) },
          'retention failed; will retry after the next point',
        ),
      );
    log.info(
      { app, point: point.id, label: point.label, seqTo: point.seqTo },
      'recovery point committed',
    );
    return point;
  }

  /** Apps the gateway knows: held in the store, or with an agent session since it started. */
  const known = () => [...new Set([...store.apps(), ...runtimes.keys()])].sort();

  function status(app: string): AppStatus {
    const a = store.app(app);
    // Asking about a name must not create state for it: a typo would stay listed forever.
    const rt = runtimes.get(app) ?? {
      lease: undefined,
      bytesShipped: 0,
      recent: [],
      maintenance: Promise.resolve(),
    };
    const points = a?.points() ?? [];
    const last = points[points.length - 1];
    const consistent = points.findLast((p) => p.label !== 'fuzzy');
    const t = now();
    const said = rt.lease?.unchanged;
    const unchanged =
      consistent && consistent === last && said?.point === consistent.id
        ? Math.max(Date.parse(consistent.time), said.at)
        : undefined;
    rt.recent = rt.recent.filter(([at]) => t - at < 60_000);
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
    const p = protection.get(app);
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
      storedBytes: a?.stats().segmentBytes ?? 0,
      backlogBytes: lease?.backlogBytes ?? 0,
      protection: {
        state: p?.state ?? 'protected',
        ...(p?.opId !== undefined ? { opId: p.opId } : {}),
        ...(p?.by !== undefined ? { by: p.by } : {}),
        ...(p?.since !== undefined ? { since: p.since } : {}),
      },
    };
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://gateway');
    const parts = decodePath(url.pathname);
    const method = req.method ?? 'GET';
    if (parts[0] !== 'v1')
      throw new HttpError(
        404,
        new DrError(`no such path ${url.pathname}`, { code: 'bad_request' }),
      );
    if (parts[1] === 'status' && method === 'GET') {
      const only = url.searchParams.get('app');
      // Asking about an app adds nothing: an unknown name answers an empty list.
      const names = only ? known().filter((a) => a === named('app', only, 'app=')) : known();
      return sendJson(res, 200, names.map(status));
    }
    if (parts[1] !== 'apps' || !parts[2])
      throw new HttpError(
        404,
        new DrError(`no such path ${url.pathname}`, { code: 'bad_request' }),
      );
    const app = named('app', parts[2], 'path');
    const rest = parts.slice(3);
    const key = `${method} ${rest.map((p, i) => (i === 1 || i === 3 ? ':' : p)).join('/')}`;
    switch (key) {
      case 'POST session':
        return sendJson(res, 200, await openSession(app, await readJson(req)));
      case 'DELETE session': {
        const rt = runtime(app);
        if (rt.lease && rt.lease.sessionId === url.searchParams.get('id')) rt.lease = undefined;
        return sendJson(res, 200, { released: true });
      }
      case 'POST batches': {
        const t0 = now();
        const body = await readBody(req, maxBatchBytes);
        const sessionId = req.headers['x-lifeboat-session'];
        const ack = await receiveBatch(
          app,
          typeof sessionId === 'string' ? sessionId : undefined,
          body,
        );
        onBatch?.({
          app,
          bytes: body.reduce((n, b) => n + b.length, 0),
          ms: now() - t0,
          duplicate: ack.duplicate,
        });
        return sendJson(res, 200, ack);
      }
      case 'POST points':
        return sendJson(res, 200, await commit(app, await readJson<unknown>(req)));
      case 'POST throttle': {
        appStore(app); // a cap for an app the gateway holds no replica of is refused
        const body = await readJson<{ maxRate: unknown; by: unknown }>(req);
        return sendJson(res, 200, await throttles.set(app, body));
      }
      case 'POST protection':
        return sendJson(res, 200, await setProtection(app, await readJson(req)));
      case 'GET protection':
        return sendJson(res, 200, await protectionOf(app));
      case 'POST heartbeat': {
        // A paused agent keeps saying it is alive and waiting; a failed-over one is refused.
        await refuseUnlessProtected(app, { whilePaused: true });
        const hb = await readJson<HeartbeatRequest>(req);
        const lease = holdsLease(app, hb.sessionId);
        lease.phase = hb.phase;
        lease.intervalMs = Number(hb.intervalMs) || 5000;
        lease.backlogBytes = Number(hb.backlogBytes) || 0;
        lease.error = hb.error;
        if (Number.isFinite(hb.clockOffsetMs)) lease.clockOffsetMs = Number(hb.clockOffsetMs);
        if (hb.trackers && typeof hb.trackers === 'object') lease.trackers = hb.trackers;
        if (Number.isFinite(hb.lastFreezeMs)) lease.lastFreezeMs = Number(hb.lastFreezeMs);
        if (hb.lastResync) lease.lastResync = hb.lastResync;
        lease.link = linkStateOf(hb.link) ?? lease.link;
        const lp = hb.lastPoint;
        if (lp && Number.isSafeInteger(lp.id) && typeof lp.time === 'string')
          lease.agentLastPoint = {
            id: lp.id,
            time: String(lp.time).slice(0, 40),
            label: String(lp.label).slice(0, 40),
          };
        const at = Date.parse(String(hb.unchanged?.at)) + (lease.clockOffsetMs || 0);
        // Only about the newest point, and never from the future: a stale word changes nothing.
        lease.unchanged =
          hb.unchanged && Number.isInteger(hb.unchanged.point) && Number.isFinite(at)
            ? { point: hb.unchanged.point, at: Math.min(at, now()) }
            : lease.unchanged;
        return sendJson(res, 200, { serverTime: now(), throttle: await throttles.get(app) });
      }
      case 'GET points':
        return sendJson(res, 200, appStore(app).points());
      case 'GET points/:': {
        const a = appStore(app);
        const p = a.point(named('point', rest[1], 'path'));
        return sendJson(res, 200, { ...p, app, volumeInfo: a.volumes().map(volumeInfo) });
      }
      case 'GET points/:/volumes/:/macs': {
        const a = appStore(app);
        const vol = named('volume', rest[3], 'path');
        volumeOf(a, vol);
        const entries =
          rest[1] === 'head'
            ? await a.headEntries(vol)
            : await a.pointEntries(a.point(named('point', rest[1], 'path')).id, vol);
        const out = Buffer.allocUnsafe(entries.length * 20);
        entries.forEach((e, i) => {
          out.writeUInt32BE(e.block, i * 20);
          e.mac.copy(out, i * 20 + 4);
        });
        res.writeHead(200, {
          'content-type': 'application/octet-stream',
          'content-length': out.length,
        });
        res.end(out);
        return;
      }
      case 'GET points/:/volumes/:/records': {
        const a = appStore(app);
        const vol = named('volume', rest[3], 'path');
        volumeOf(a, vol);
        const id = a.point(named('point', rest[1], 'path')).id;
        // ?since=SEQ: only records that arrived after batch SEQ (what changed since a point
        // whose seqTo is SEQ), for a worker that keeps that point's image.
        const sinceParam = url.searchParams.get('since');
        const since = sinceParam === null ? -1 : Number(sinceParam);
        if (!Number.isSafeInteger(since) || since < -1) {
          throw badRequest(
            `since=${sinceParam} is not a batch sequence number`,
            "send since=SEQ, a point's seqTo",
          );
        }
        await a.withReadLock(async () => {
          const all = await a.pointEntries(id, vol);
          const entries = since < 0 ? all : all.filter((e) => e.seq > since);
          // Said before the first byte: once the stream has begun, an error can only cut it off.
          const missing = await a.missingSegments(entries);
          if (missing.length > 0) {
            throw new DrError(
              `the gateway store is missing ${missing.length === 1 ? 'the segment file' : `${missing.length} segment files`} ${missing.join(', ')} that point ${id} of ${app}/${vol} needs`,
              {
                code: 'store_corrupt',
                subject: missing[0] as string,
                remedy: `restore the gateway store from a backup, or use an older point (\`dr verify ${app} --point ID\` tells which still read)`,
              },
            );
          }
          res.writeHead(200, { 'content-type': 'application/octet-stream' });
          // Records of one point mostly lie back to back in a segment: read
          // runs of them (up to 4 MiB) in one call, the next run while this
          // one is sent.
          const runs = recordRuns(entries);
          const readRun = (r: (typeof runs)[number]) =>
            a.readSpan(r.segment, r.offset, r.length).then((buf) => ({ r, buf }));
          let next = runs[0] ? readRun(runs[0]) : undefined;
          for (let k = 0; k < runs.length; k++) {
            const { r, buf } = await (next as ReturnType<typeof readRun>);
            next = runs[k + 1] ? readRun(runs[k + 1] as (typeof runs)[number]) : undefined;
            const parts: Buffer[] = [];
            for (const e of r.entries) {
              const head = Buffer.allocUnsafe(16);
              head.writeUInt32BE(e.block, 0);
              head.writeBigUInt64BE(BigInt(e.seq), 4);
              head.writeUInt32BE(e.length, 12);
              parts.push(head, buf.subarray(e.offset - r.offset, e.offset - r.offset + e.length));
            }
            if (!res.write(Buffer.concat(parts))) await drainOrClose(res);
            if (res.destroyed) {
              await next?.catch(() => undefined); // the reader went away: let the read finish, then release the lock
              return;
            }
          }
          res.end();
        });
        return;
      }
      default:
        throw new HttpError(
          404,
          new DrError(`no such operation ${method} ${url.pathname}`, { code: 'bad_request' }),
        );
    }
  }

  const server = createServer(
    { ...tls, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' },
    (req, res) => {
      route(req, res).catch((caught: unknown) => {
        // A full disk can fail any write (catalog, point index, protection state), not only
        // segment appends: the agent must hear 507 and wait, not an internal error that stops it.
        const err =
          caught instanceof HttpError
            ? caught
            : isDrError(caught, 'gateway_full')
              ? new HttpError(507, caught)
              : !isDrError(caught) && isDiskFull(caught)
                ? new HttpError(
                    507,
                    new DrError(`the gateway store is full: ${errorMessage(caught)}`, {
                      code: 'gateway_full',
                      subject: store.dir,
                      remedy:
                        'free space on the gateway disk or shorten the retention; the agent waits and retries',
                      cause: caught,
                    }),
                  )
                : caught;
        const status =
          err instanceof HttpError
            ? err.status
            : isDrError(err, 'point_unknown') || isDrError(err, 'app_unknown')
              ? 404
              : isDrError(err, 'bad_request')
                ? 400
                : isDrError(err, 'store_corrupt')
                  ? 500
                  : isDrError(err, 'point_conflict')
                    ? 409
                    : isDrError(err)
                      ? 422
                      : 500;
        const e = err instanceof HttpError ? err.err : err;
        if (status >= 500 && status !== 507)
          log.error({ err: errorMessage(e), url: req.url }, 'request failed');
        else log.warn({ err: errorMessage(e), url: req.url, status }, 'request refused');
        if (res.headersSent) {
          res.destroy();
          return;
        }
        sendJson(res, status, {
          error: isDrError(e)
            ? { code: e.code, message: e.message, subject: e.subject }
            : { code: 'internal', message: 'internal gateway error; see the gateway log' },
        });
      });
    },
  );
  server.on('tlsClientError', (err) =>
    log.warn({ err: errorMessage(err) }, 'TLS handshake refused'),
  );

  const [host, port] = splitHostPort(listen);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => {
      reject(
        new DrError(
          `gateway cannot listen on ${listen} (${systemCode(err) ?? errorMessage(err)})`,
          {
            code: 'usage',
            subject: listen,
            remedy: 'choose another gateway.listen in dr.yaml, or stop what holds that port',
            cause: err,
          },
        ),
      );
    });
    server.listen(port, host, () => resolve());
  });
  for (const a of store.apps()) await protectionOf(a); // status shows failed-over apps from the start
  const bound = server.address() as AddressInfo;
  const address = `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`;
  log.info({ address, store: store.dir }, 'gateway listening');

  const statuses = () => [...new Set([...store.apps(), ...runtimes.keys()])].sort().map(status);
  return {
    server,
    address,
    statuses,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await Promise.all([...runtimes.values()].map((r) => r.maintenance));
      await store.close();
    },
  };
}

function volumeInfo(v: VolumeMeta): VolumeInfo {
  return {
    name: v.name,
    id: v.id,
    size: v.size,
    blockSize: v.blockSize,
    wrappedKey: v.wrappedKey.toString('base64'),
  };
}

function volumeOf(a: AppStore, name: string): VolumeMeta {
  const v = a.volumes().find((x) => x.name === name);
  if (!v) {
    throw new HttpError(
      404,
      new DrError(`no volume ${JSON.stringify(name)} in this app`, {
        code: 'bad_request',
        subject: name,
        remedy: `use one of: ${a
          .volumes()
          .map((x) => x.name)
          .join(', ')}`,
      }),
    );
  }
  return v;
}

/** The path's segments, %-decoded; a malformed escape is the client's error (400), never ours. */
function decodePath(pathname: string): string[] {
  return pathname
    .split('/')
    .filter(Boolean)
    .map((p) => {
      try {
        return decodeURIComponent(p);
      } catch {
        // URIError: the escape is malformed; answered as a 400 naming the segment.
        throw badRequest(
          `path segment ${JSON.stringify(p.slice(0, 80))} has a malformed %-escape`,
          'encode names with encodeURIComponent',
        );
      }
    });
}

/** An identifier from a request, after decoding, through the one check in core/names (400 if bad). */
function named<K extends NameKind>(kind: K, value: unknown, where: string): NameOf<K> {
  try {
    return checkName(kind, value, where);
  } catch (err) {
    if (isDrError(err)) throw new HttpError(400, err);
    throw err;
  }
}

export function splitHostPort(hp: string): [string, number] {
  const m = /^\[?([^\]]+)\]?:(\d+)$/.exec(hp);
  if (!m)
    throw new DrError(`${hp} is not HOST:PORT`, {
      code: 'config_invalid',
      subject: hp,
      remedy: 'write it like 127.0.0.1:7443',
    });
  return [m[1] as string, Number(m[2])];
}

async function freeBytes(dir: string): Promise<number | undefined> {
  try {
    const s = await statfs(dir);
    return s.bavail * s.bsize;
  } catch {
    // statfs is unsupported on some file systems: the write itself still catches ENOSPC.
    return undefined;
  }
}

/** Entries grouped into runs that lie back to back in one segment, at most 4 MiB each. */
function recordRuns(
  entries: readonly IndexEntry[],
): Array<{ segment: number; offset: number; length: number; entries: IndexEntry[] }> {
  const runs: Array<{ segment: number; offset: number; length: number; entries: IndexEntry[] }> =
    [];
  for (const e of entries) {
    const last = runs[runs.length - 1];
    if (
      last &&
      last.segment === e.segment &&
      last.offset + last.length === e.offset &&
      last.length + e.length <= 4 * 1024 * 1024
    ) {
      last.length += e.length;
      last.entries.push(e);
    } else runs.push({ segment: e.segment, offset: e.offset, length: e.length, entries: [e] });
  }
  return runs;
}

/** Waits until a response can take more bytes, or its client has gone. */
function drainOrClose(res: ServerResponse): Promise<void> {
  // A client gone before we listen has already sent its 'close': waiting for it would hold the
  // app's read lock (and so retention, GC and shutdown) forever.
  if (res.destroyed || res.writableEnded) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

/**
 * Reads a whole body as the chunks it arrived in (a batch is written to disk
 * from them without a copy); a body cut off mid-upload rejects, so a partial
 * batch is never applied.
 */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? Number.NaN);
    if (declared > limit) {
      reject(
        badRequest(
          `body of ${declared} bytes exceeds the limit of ${limit}`,
          'lower agent.batchSize in dr.yaml',
        ),
      );
      req.resume();
      return;
    }
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) req.destroy(new Error('body too large'));
      else parts.push(c);
    });
    req.on('end', () => {
      if (!req.complete || (Number.isFinite(declared) && size !== declared)) {
        reject(badRequest('request body was cut off', 'the agent resends it; nothing was stored'));
      } else resolve(parts);
    });
    req.on('error', reject);
    req.on('aborted', () =>
      reject(badRequest('request body was cut off', 'the agent resends it; nothing was stored')),
    );
  });
}

async function readJson<T>(req: IncomingMessage): Promise<T> {
  const body = Buffer.concat(await readBody(req, 4 * 1024 * 1024));
  try {
    return JSON.parse(body.toString('utf8')) as T;
  } catch {
    throw badRequest('request body is not JSON', 'send application/json');
  }
}

/** Whether an error (or one it was caused by) is the disk being full. */
function isDiskFull(err: unknown): boolean {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = systemCode(e);
    if (code === 'ENOSPC' || code === 'EDQUOT') return true;
  }
  return false;
}

/** The link state from a heartbeat, its fields bounded; undefined when it is not one. */
function linkStateOf(v: unknown): LinkState | undefined {
  if (!v || typeof v !== 'object') return undefined;
  const l = v as Record<string, unknown>;
  if (typeof l.compression !== 'string') return undefined;
  const num = (x: unknown) =>
    typeof x === 'number' && Number.isFinite(x) && x >= 0 ? x : undefined;
  const ratio = num(l.ratio);
  const capBytesPerSec = num(l.capBytesPerSec);
  return {
    compression: l.compression.slice(0, 40),
    ...(ratio !== undefined ? { ratio } : {}),
    ...(capBytesPerSec !== undefined ? { capBytesPerSec } : {}),
    ...(typeof l.cap === 'string' ? { cap: l.cap.slice(0, 200) } : {}),
    ...(l.capFrom === 'chat' ? { capFrom: 'chat' as const } : {}),
    heldFraction: Math.min(1, num(l.heldFraction) ?? 0),
  };
}
