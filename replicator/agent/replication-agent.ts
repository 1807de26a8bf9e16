import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AppConfig } from '../../core/config.js';
import { DrError, errorMessage, isDrError } from '../../core/errors.js';
import { type Logger, silentLog } from '../../core/log.js';
import { Quiescer } from '../capture/quiesce.js';
import { VolumeFile } from '../capture/volume-file.js';
import type { KeyEncryptionKey } from '../crypto/key-encryption-key.js';
import {
  type PointRecord,
  pointSigningKey,
  recordHash,
  signRecord,
} from '../crypto/point-record.js';
import {
  createWrappedVolumeKey,
  MAC_BYTES,
  volumeDigest,
  volumeKeysOf,
} from '../crypto/volume-key.js';
import { checkRecord } from '../recovery/point-check.js';
import type { GatewayClient } from '../transport/gateway-client.js';
import type {
  ConsistencyLabel,
  Phase,
  PointInfo,
  ProtectionState,
  SessionResponse,
} from '../transport/wire-types.js';
import { absentMacs } from './absent-macs.js';
import { AgentLock, type PidLock } from './agent-lock.js';
import { BatchShipper } from './batch-shipper.js';
import {
  type CutContext,
  checkSizes,
  type FreezeSplit,
  frozenCut,
  type OpenVolume,
  type ResyncReport,
  roundSplit,
  type SyncProgress,
  shipRound,
} from './cut.js';

export type { ResyncReport, SyncProgress } from './cut.js';

import { lockDevice } from './device-lock.js';
import { MacState } from './mac-state.js';
import { type LedgerEntry, readLedger, writeLedger } from './point-ledger.js';
import { withRetry } from './retry.js';
import { type TraceSettings, type TrackerChoice, VolumeTracking } from './volume-tracking.js';

export interface AgentOptions {
  app: string;
  appConfig: AppConfig;
  client: GatewayClient;
  kek: KeyEncryptionKey;
  /** This app's folder under DR_HOME/state/agents. */
  stateDir: string;
  /** A batch is sent once its records pass this many bytes. */
  batchBytes?: number;
  /** Batches on the wire at once, awaiting acknowledgement. */
  inFlight?: number;
  intervalMs?: number;
  /** How changes are found: block tracing, scanning, or tracing where possible. */
  tracker?: TrackerChoice;
  trace?: TraceSettings;
  log?: Logger;
  onProgress?: (p: SyncProgress) => void;
  /** Told as batches are acknowledged and cycles end, for metrics; never throws back into the agent. */
  observe?: AgentObserver;
  now?: () => number;
  /** While paused, how often the agent asks the gateway whether it was resumed (default: the interval, 1-5 s). */
  pausePollMs?: number;
}

/** What an observer (the agent's metrics) hears about. */
export interface AgentObserver {
  /** A batch acknowledged by the gateway: its size on the wire and the time from send to ack. */
  batch?(e: { bytes: number; ms: number }): void;
  /** A cycle that committed a point. */
  cycle?(report: CycleReport): void;
  /** A cycle that failed; the agent retries next cycle. */
  cycleFailed?(err: unknown): void;
  /** A traced volume resynced by scan. */
  resync?(r: ResyncReport): void;
}

export interface CycleReport {
  /** The point committed, or (with `unchanged`) the newest one, which is still the state now. */
  point: PointInfo;
  /**
   * Nothing changed since `point`, so none was committed: a copy every second of an idle disk
   * would only bury the points that matter.
   */
  unchanged?: boolean;
  blocksSent: number;
  bytesSent: number;
  scannedBytes: number;
  ms: number;
  /** How long the volumes were frozen for the cut, when they were. */
  freezeMs?: number;
}

/** Pre-copy stops once a round finds less than this: the rest waits for the cut. */
const PRECOPY_ENOUGH = 8 * 1024 * 1024;

/**
 * The source-side agent for one app: scans its volumes, ships changed blocks
 * encrypted in sequence-numbered batches, and commits one recovery point for
 * all of them per cycle.
 */
export class ReplicationAgent {
  private readonly log: Logger;
  private readonly now: () => number;
  private lock: AgentLock | undefined;
  private session: SessionResponse | undefined;
  /** The one session reopening in progress, shared by the calls that found the session lost. */
  private reopening: Promise<void> | undefined;
  private volumes: OpenVolume[] = [];
  private macState: MacState | undefined;
  private nextSeq = 1;
  private lastAcked = 0;
  private phase: Phase = 'initial-sync';
  private lastError: string | undefined;
  private backlogBytes = 0;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private quiescer: Quiescer | undefined;
  private lastFreezeMs: number | undefined;
  private lastResync: ResyncReport | undefined;
  /** The newest point on the gateway. */
  private newestPoint: PointInfo | undefined;
  /** The last cycle found no change since `newestPoint`, at this agent time. */
  private unchangedAt: number | undefined;
  /** Gateway clock minus ours, from heartbeat round trips. */
  private clockOffsetMs = 0;
  /** Signs point records; derived from the KEK, never sent anywhere. */
  private readonly pointKey: Buffer;
  /** The last batch sequence committed into a point. */
  private committedSeq = 0;
  /** The point the next one follows: its id and its record's hash (null when it has no signed record). */
  private chainHead: { id: number; hash: string | null; timeMs: number } | undefined;
  /** The last point this agent committed, as it signed it (also in its state folder). */
  private ledger: LedgerEntry | undefined;

  constructor(private readonly opts: AgentOptions) {
    this.log = (opts.log ?? silentLog).child({ app: opts.app });
    this.now = opts.now ?? Date.now;
    this.pointKey = pointSigningKey(opts.kek, opts.app);
  }

  /** The last point this agent committed (its own view, to set beside the gateway's). */
  get lastPoint(): LedgerEntry | undefined {
    return this.ledger;
  }

  /**
   * Takes the gateway's latest point as the head of the chain, after checking it against this
   * agent's own record: a latest point that does not verify, or that is older than the last
   * point this agent committed into the same store, means the gateway lost, rolled back or
   * withholds points, and the agent stops saying so.
   */
  private async adoptChain(session: SessionResponse): Promise<void> {
    const { app, stateDir } = this.opts;
    const g = session.latestPoint;
    if (g && (g.record !== undefined || g.sig !== undefined)) {
      const trust = checkRecord(this.pointKey, app, g);
      if (trust.status !== 'signed') {
        throw new DrError(
          `the gateway's latest point ${g.id} of ${app} does not verify: ${trust.reason}`,
          {
            code: 'point_unverified',
            subject: `${app}/${g.id}`,
            remedy: 'check the gateway store for tampering; restore it from a backup',
          },
        );
      }
    }
    this.ledger = await readLedger(stateDir);
    const mine = this.ledger;
    if (mine && mine.storeId !== session.storeId) {
      this.log.warn(
        { point: mine.id, storeId: session.storeId },
        'the gateway store was replaced since this agent last committed; its chain starts again there',
      );
    } else if (mine && (!g || g.id < mine.id)) {
      throw new DrError(
        `the gateway's latest point of ${app} is ${g ? `#${g.id}` : 'none'}, but this agent committed #${mine.id} (${mine.time}): the gateway lost, rolled back or withholds points`,
        {
          code: 'point_unverified',
          subject: app,
          remedy: `check the gateway store (restore it from a backup); to start a new chain from what it holds, move ${stateDir}/last-point.json aside`,
        },
      );
    } else if (mine && g?.id === mine.id && g.record && recordHash(g.record) !== mine.hash) {
      throw new DrError(
        `the gateway's point #${g.id} of ${app} is not the one this agent committed: the history forked`,
        {
          code: 'point_unverified',
          subject: `${app}/${g.id}`,
          remedy: 'check the gateway store for tampering; restore it from a backup',
        },
      );
    }
    this.chainHead = g
      ? {
          id: g.id,
          hash: g.record ? recordHash(g.record) : null,
          timeMs: Date.parse(g.time) || 0,
        }
      : undefined;
    this.committedSeq = session.committedSeq;
  }

  /** Takes the lock, opens the volumes and the gateway session, and recovers from any crash. */
  async start(signal?: AbortSignal): Promise<void> {
    const { app, appConfig, client, kek, stateDir } = this.opts;
    this.macState = await MacState.open(stateDir);
    this.lock = await AgentLock.acquire(stateDir, app);
    let opened: Array<{ file: VolumeFile; tracking?: VolumeTracking; lock?: PidLock }> = [];
    try {
      const files: Array<{
        name: string;
        file: VolumeFile;
        size: number;
        tracking?: VolumeTracking;
        lock?: PidLock;
      }> = [];
      opened = files;
      for (const v of appConfig.volumes) {
        const file = await VolumeFile.open(v.name, v.path, v.size);
        const entry: (typeof files)[number] = { name: v.name, file, size: await file.size() };
        files.push(entry);
        entry.lock = await lockDevice(v.path, v.name, app);
        // Tracing starts before anything is read, so no write between here and the first scan is missed.
        entry.tracking = await VolumeTracking.open(
          this.opts.tracker ?? 'auto',
          file,
          appConfig.blockSize,
          this.log,
          this.opts.trace,
        );
      }
      this.quiescer = new Quiescer({
        ...(appConfig.quiesce?.fsfreeze.length ? { fsfreeze: appConfig.quiesce.fsfreeze } : {}),
        ...(appConfig.quiesce?.freeze ? { freezeCmd: appConfig.quiesce.freeze } : {}),
        ...(appConfig.quiesce?.thaw ? { thawCmd: appConfig.quiesce.thaw } : {}),
        ...(appConfig.quiesce ? { timeoutMs: appConfig.quiesce.timeout } : {}),
        log: this.log,
      });
      // A previous agent killed while the volumes were frozen: thaw them first.
      if (this.quiescer.enabled) await this.quiescer.recover();
      let askedAt = this.now();
      const session = await withRetry(
        () => {
          askedAt = this.now();
          return client.openSession(app, {
            agentId: `${hostname()}:${process.pid}`,
            host: hostname(),
            pid: process.pid,
            ...(this.lock?.previousSession ? { replaces: this.lock.previousSession } : {}),
            ...(this.lock?.deadPids.length ? { replacesPids: this.lock.deadPids } : {}),
            volumes: files.map((f) => ({
              name: f.name,
              size: f.size,
              blockSize: appConfig.blockSize,
              wrappedKey: createWrappedVolumeKey(kek, app, f.name).toString('base64'),
            })),
          });
        },
        { what: 'open session', log: this.log, signal },
      );
      // The first clock offset, before any point is cut; heartbeats refine it.
      this.clockOffsetMs = Math.round(session.serverTime - (askedAt + this.now()) / 2);
      this.session = session;
      await this.lock.recordSession(session.sessionId);
      this.phase = session.latestPoint ? 'continuous' : 'initial-sync';
      this.lastAcked = session.committedSeq;
      this.committedSeq = session.committedSeq;
      this.newestPoint = session.latestPoint ?? undefined;
      this.nextSeq = session.lastSeq + 1;

      const state = this.macState.state;
      const sameStore = state?.storeId === session.storeId;
      for (const f of files) {
        const info = session.volumes.find((v) => v.name === f.name);
        if (!info)
          throw new DrError(`gateway did not register volume ${f.name}`, {
            code: 'gateway_refused',
          });
        if (info.blockSize !== appConfig.blockSize) {
          throw new DrError(
            `volume ${f.name} is replicated with block size ${info.blockSize}, but dr.yaml says ${appConfig.blockSize}`,
            {
              code: 'config_invalid',
              subject: `apps.${app}.blockSize`,
              remedy: `set blockSize back to ${info.blockSize}`,
            },
          );
        }
        const keys = volumeKeysOf(kek, app, info);
        const prev = state?.volumes[f.name];
        if (prev && prev.size !== f.size) {
          this.log.warn(
            { volume: f.name, from: prev.size, to: f.size },
            'volume size changed since the last run; protecting the new size',
          );
        }
        const trustLocal = sameStore && prev?.size === f.size && prev.blockSize === info.blockSize;
        const blocks = Math.ceil(f.size / info.blockSize);
        await this.macState.load(
          f.name,
          blocks,
          async () => {
            const macs = absentMacs(keys, f.size);
            const held = await withRetry(() => client.macs(app, 'head', f.name), {
              what: 'fetch MACs',
              log: this.log,
              signal,
            });
            for (const [block, mac] of held) if (block < blocks) mac.copy(macs, block * MAC_BYTES);
            this.log.info(
              { volume: f.name, blocksHeld: held.size },
              'starting from the gateway’s copy',
            );
            return macs;
          },
          trustLocal,
        );
        this.volumes.push({
          name: f.name,
          id: info.id,
          file: f.file,
          size: f.size,
          blockSize: info.blockSize,
          keys,
          tracking: f.tracking as VolumeTracking,
          lock: f.lock as PidLock,
        });
      }
      // After the keys unwrapped (a wrong KEK is named as such, not as a forged point).
      await this.adoptChain(session);
      // Batches sent before a crash: those the gateway holds count as sent.
      const pending = new Set(session.pendingSeqs);
      const intents = await this.macState.pendingIntents();
      for (const intent of intents)
        if (sameStore && pending.has(intent.seq)) this.macState.apply(intent);
      await this.macState.flush();
      await this.macState.saveState({
        storeId: session.storeId,
        volumes: Object.fromEntries(
          this.volumes.map((v) => [v.name, { size: v.size, blockSize: v.blockSize }]),
        ),
      });
      this.startHeartbeat();
    } catch (err) {
      // Volumes opened before the failure are not in this.volumes yet.
      for (const f of opened) {
        if (this.volumes.some((v) => v.file === f.file)) continue;
        await f.tracking?.close();
        await f.lock?.release();
        await f.file.close();
      }
      await this.stop();
      throw err;
    }
  }

  /**
   * Calls the gateway with the current session, retrying transient failures.
   * A gateway that restarted has forgotten the session: open a new one
   * (taking over our own) and go on; the batches it made durable stay.
   */
  private call<T>(
    what: string,
    op: (sessionId: string) => Promise<T>,
    signal?: AbortSignal,
  ): Promise<T> {
    return withRetry(
      async () => {
        const session = this.session;
        if (!session) throw new Error('agent not started');
        try {
          return await op(session.sessionId);
        } catch (err) {
          const lost = isDrError(err, 'session_lost');
          if (!lost && !isDrError(err, 'agent_conflict')) throw err;
          // With several calls in flight, one may be reopening the session while others are
          // answered "session lost" or, once the new session exists, "another agent" (which
          // is this agent's new session): wait for that one reopening and go on with it.
          if (this.reopening) await this.reopening;
          if (this.session && this.session !== session) return op(this.session.sessionId);
          if (!lost) throw err;
          this.reopening ??= this.reopen(session, signal).finally(() => {
            this.reopening = undefined;
          });
          await this.reopening;
          return op((this.session as SessionResponse).sessionId);
        }
      },
      {
        what,
        log: this.log,
        signal,
        onRetry: (err) => {
          this.lastError = errorMessage(err);
        },
      },
    );
  }

  private async reopen(old: SessionResponse, signal?: AbortSignal): Promise<void> {
    const { app, appConfig, client, kek } = this.opts;
    const next = await withRetry(
      () =>
        client.openSession(app, {
          agentId: `${hostname()}:${process.pid}`,
          host: hostname(),
          pid: process.pid,
          replaces: old.sessionId,
          volumes: this.volumes.map((v) => ({
            name: v.name,
            size: v.size,
            blockSize: appConfig.blockSize,
            wrappedKey: createWrappedVolumeKey(kek, app, v.name).toString('base64'),
          })),
        }),
      { what: 'reopen session', log: this.log, signal },
    );
    if (next.storeId !== old.storeId) {
      throw new DrError(`the gateway's store for ${app} was replaced while the agent ran`, {
        code: 'agent_conflict',
        subject: app,
        remedy: 'restart the agent: it re-syncs against the new store',
      });
    }
    await this.adoptChain(next);
    this.session = next;
    await this.lock?.recordSession(next.sessionId);
    this.nextSeq = Math.max(this.nextSeq, next.lastSeq + 1);
    this.log.info({ sessionId: next.sessionId }, 'gateway restarted; session reopened');
  }

  /**
   * One cycle: pre-copy rounds ship what changed while writes go on; then the
   * cut: freeze (when the app has a quiesce setup), take what is still
   * changed into memory, thaw, ship it, and commit one point for all volumes.
   * Without a freeze the round itself is the cut and the point is fuzzy.
   */
  async cycle(signal?: AbortSignal): Promise<CycleReport> {
    const { app, client } = this.opts;
    const macState = this.macState;
    if (!this.session || !macState) throw new Error('agent not started');
    const started = this.now();
    const shipper = new BatchShipper({
      app,
      macState,
      takeSeq: () => this.nextSeq++,
      returnSeq: (seq) => {
        if (seq === this.nextSeq - 1) this.nextSeq--;
      },
      send: async (seq, body) => {
        const t0 = this.now();
        await this.call(`batch ${seq}`, (id) => client.sendBatch(app, id, body), signal);
        this.lastError = undefined;
        this.opts.observe?.batch?.({
          bytes: body.reduce((n, b) => n + b.length, 0),
          ms: this.now() - t0,
        });
      },
      batchBytes: this.opts.batchBytes ?? 4 * 1024 * 1024,
      inFlight: this.opts.inFlight ?? 4,
      onBacklog: (d) => {
        this.backlogBytes += d;
      },
    });
    let scannedBytes = 0;
    try {
      await checkSizes(this.volumes);
      // Pre-copy: with a freeze ahead, ship the bulk now so the freeze stays short.
      const rounds = this.quiescer?.enabled ? 3 : 1;
      for (let r = 0; r < rounds; r++) {
        const before = shipper.plainBytes;
        const { scanned, allTraced } = await shipRound(
          this.cutContext(),
          shipper,
          undefined,
          signal,
        );
        scannedBytes += scanned;
        if (!allTraced || shipper.plainBytes - before < PRECOPY_ENOUGH) break;
      }
      let label: ConsistencyLabel = 'fuzzy';
      let cutAt = this.now();
      let freezeMs: number | undefined;
      let freezeSplit: FreezeSplit | undefined;
      if (this.quiescer?.enabled) {
        const cut = await frozenCut(this.cutContext(), this.quiescer, shipper, signal);
        label = cut.label;
        cutAt = cut.at;
        freezeMs = cut.freezeMs;
        freezeSplit = cut.freezeSplit;
        if (freezeMs !== undefined) this.lastFreezeMs = freezeMs;
        if (cut.freezeError) this.lastError = cut.freezeError;
        scannedBytes += cut.scanned;
      }
      await shipper.finish();
      await macState.flush();
      const volumes: Record<string, { size: number; digest: string }> = {};
      for (const v of this.volumes) {
        const macs = macState.macs.get(v.name) as Buffer;
        volumes[v.name] = {
          size: v.size,
          digest: volumeDigest(v.keys.mac, v.size, macs).toString('hex'),
        };
      }
      const upToSeq = Math.max(shipper.lastAcked, this.lastAcked);
      const prior = this.newestPoint;
      // Nothing shipped: a new point would hold exactly the last one's blocks. Only a cut that
      // is consistent where the last point was fuzzy is worth committing again.
      if (
        prior &&
        (prior.label !== 'fuzzy' || label === 'fuzzy') &&
        shipper.blocks === 0 &&
        upToSeq <= this.committedSeq &&
        this.lastError === undefined
      ) {
        // No batch or commit told it: ask whether the app was paused or failed over meanwhile.
        await this.refuseUnlessProtected(signal);
        this.phase = 'continuous';
        const first = this.unchangedAt === undefined;
        this.unchangedAt = cutAt; // `run` sends it with the heartbeat after each cycle
        const ms = this.now() - started;
        // Said once per quiet stretch: a line a second would bury the log.
        if (first)
          this.log.info(
            { point: prior.id, label: prior.label, ms },
            'no change since the last point; none committed until something changes',
          );
        else this.log.debug({ point: prior.id, ms }, 'no change since the last point');
        return {
          point: prior,
          unchanged: true,
          blocksSent: 0,
          bytesSent: 0,
          scannedBytes,
          ms,
          ...(freezeMs !== undefined ? { freezeMs } : {}),
        };
      }
      // The record is signed once and resent as is: a commit whose answer was lost is
      // recognised by the gateway, never made twice. Its time is the cut's, moved onto the
      // gateway's clock, so lag reads right across machines. The clock offset is re-estimated
      // from each heartbeat, so a slow round trip can move it back: a point's time never goes
      // before the previous point's, or every reader of the chain would refuse it.
      const cutTimeMs = Math.max(cutAt + this.clockOffsetMs, this.chainHead?.timeMs ?? 0);
      const record: PointRecord = {
        v: 1,
        app,
        id: (this.chainHead?.id ?? 0) + 1,
        seqFrom: this.committedSeq + 1,
        seqTo: upToSeq,
        time: new Date(cutTimeMs).toISOString(),
        label,
        volumes,
        prev: this.chainHead?.hash ?? null,
      };
      const signed = signRecord(this.pointKey, record);
      const point = await this.call(
        'commit point',
        (sessionId) => client.commit(app, { sessionId, ...signed }),
        signal,
      );
      const hash = recordHash(record);
      this.chainHead = { id: record.id, hash, timeMs: cutTimeMs };
      this.committedSeq = upToSeq;
      this.ledger = {
        storeId: this.session?.storeId ?? '',
        id: record.id,
        hash,
        seqTo: upToSeq,
        time: record.time,
        label,
        committedAt: new Date(this.now()).toISOString(),
      };
      await writeLedger(this.opts.stateDir, this.ledger);
      this.lastAcked = upToSeq;
      this.newestPoint = point;
      this.unchangedAt = undefined;
      this.phase = 'continuous';
      this.lastError = undefined;
      const ms = this.now() - started;
      this.log.info(
        {
          point: point.id,
          label,
          blocksSent: shipper.blocks,
          bytesSent: shipper.bytesSent,
          ms,
          ...(freezeMs !== undefined ? { freezeMs } : {}),
          ...(freezeSplit ? { freezeSplit: roundSplit(freezeSplit) } : {}),
        },
        'recovery point committed',
      );
      return {
        point,
        blocksSent: shipper.blocks,
        bytesSent: shipper.bytesSent,
        scannedBytes,
        ms,
        ...(freezeMs !== undefined ? { freezeMs } : {}),
      };
    } catch (err) {
      // What was acknowledged stays recorded. Blocks drained from a tracker but
      // not acknowledged would be missed: the next round rescans those volumes.
      await shipper.settle();
      this.lastAcked = Math.max(this.lastAcked, shipper.lastAcked);
      await macState.flush().catch(() => undefined); // best effort: a missed flush only resends blocks
      for (const v of this.volumes) v.tracking.distrust('the previous cycle failed');
      this.lastError = errorMessage(err);
      // The gateway's next point is not the one we signed: read its state again before the next cycle.
      if (isDrError(err, 'point_conflict') && this.session) {
        const session = this.session;
        await this.reopen(session, signal).catch((e: unknown) =>
          this.log.warn({ err: errorMessage(e) }, 'could not reread the gateway state'),
        );
      }
      throw err;
    } finally {
      shipper.close();
    }
  }

  /** The refusal a batch or commit would have met, for a cycle that sent neither. */
  private async refuseUnlessProtected(signal?: AbortSignal): Promise<void> {
    const { app, client } = this.opts;
    const p = await this.call('protection state', () => client.protection(app), signal);
    if (p.state === 'paused')
      throw new DrError(
        `replication of app ${app} is paused (by ${p.by ?? '?'} since ${p.since ?? '?'})`,
        {
          code: 'app_paused',
          subject: app,
          remedy: `resume it with \`dr resume ${app}\` or \`resume ${app}\` in chat`,
        },
      );
    if (p.state === 'failed-over')
      throw new DrError(
        `app ${app} was failed over (operation ${p.opId ?? '?'} at ${p.since ?? '?'}): its DR copy is production now, so replication into it is refused`,
        {
          code: 'app_failed_over',
          subject: app,
          remedy: `stop this agent; fail back with \`dr failback ${app}\` to protect the original site again`,
        },
      );
  }

  private cutContext(): CutContext {
    return {
      volumes: this.volumes,
      macState: this.macState as MacState,
      log: this.log,
      now: this.now,
      phase: () => this.phase,
      onProgress: this.opts.onProgress,
      onResync: (r) => {
        this.lastResync = r;
        this.opts.observe?.resync?.(r);
      },
    };
  }

  /**
   * Runs cycles until `signal` aborts (or once); errors are logged and retried next cycle. When
   * the app is failed over, the agent stands by (see `standBy`) and replicates again by itself
   * once a failback protects the app again; a one-shot run throws instead.
   */
  async run({
    once = false,
    signal,
  }: {
    once?: boolean;
    signal?: AbortSignal;
  } = {}): Promise<CycleReport | undefined> {
    let last: CycleReport | undefined;
    while (!signal?.aborted) {
      try {
        return await this.runProtected(once, signal, (r) => {
          last = r;
        });
      } catch (err) {
        if (once || signal?.aborted || !isDrError(err, 'app_failed_over')) throw err;
        await this.standBy(err, signal);
      }
    }
    return last;
  }

  private async runProtected(
    once: boolean,
    signal: AbortSignal | undefined,
    onCycle: (r: CycleReport) => void,
  ): Promise<CycleReport | undefined> {
    const interval = this.opts.intervalMs ?? 5000;
    let last: CycleReport | undefined;
    // Started while paused: wait for the resume (a one-shot run says so and stops).
    for (;;) {
      try {
        await this.start(signal);
        break;
      } catch (err) {
        if (once || signal?.aborted || !isDrError(err, 'app_paused')) throw err;
        await this.waitWhilePaused(err, signal);
        if (signal?.aborted) return last;
      }
    }
    try {
      while (!signal?.aborted) {
        const t0 = this.now();
        try {
          last = await this.cycle(signal);
          onCycle(last);
          this.opts.observe?.cycle?.(last);
          this.sendHeartbeat(); // status shows the new point's freeze and resync at once
        } catch (err) {
          this.opts.observe?.cycleFailed?.(err);
          // Failed over: the DR copy is production now; this agent stops replicating.
          if (once || signal?.aborted || isDrError(err, 'app_failed_over')) throw err;
          if (isDrError(err, 'app_paused')) {
            // Paused: no new points until resumed. Tracking goes on; the failed cycle left the
            // volumes distrusted, so the first cycle after the resume resyncs them by MAC.
            await this.waitWhilePaused(err, signal);
            continue;
          }
          this.log.error(
            { err: errorMessage(err) },
            'replication cycle failed; retrying next cycle',
          );
          this.sendHeartbeat();
        }
        if (once) break;
        const wait = Math.max(0, interval - (this.now() - t0));
        await sleep(wait, undefined, signal ? { signal } : undefined).catch(() => undefined); // aborted: the loop ends
      }
    } finally {
      await this.stop();
    }
    return last;
  }

  /**
   * The app is failed over: the agent has released its session, volumes, trace instances and
   * locks (failback must find nothing holding the originals) and says so once, then asks the
   * gateway every few seconds, quietly, until a failback protects the app again. It then starts
   * afresh from its kept MAC state: the scan finds exactly what failback wrote (reprotect without
   * a full resync). Returns at once when `signal` aborts.
   */
  private async standBy(err: DrError, signal?: AbortSignal): Promise<void> {
    const { app, client } = this.opts;
    const every =
      this.opts.pausePollMs ?? Math.min(Math.max(this.opts.intervalMs ?? 5000, 1000), 5000);
    this.log.warn(
      { err: err.message },
      `replication of ${app} stopped: it was failed over; standing by until \`dr failback ${app}\` protects it again`,
    );
    while (!signal?.aborted) {
      await sleep(every, undefined, signal ? { signal } : undefined).catch(() => undefined); // aborted: ends below
      if (signal?.aborted) return;
      let state: ProtectionState;
      try {
        state = await client.protection(app);
      } catch (e) {
        this.log.debug({ err: errorMessage(e) }, 'protection state not readable; asking again');
        continue;
      }
      if (state.state === 'failed-over') continue;
      this.log.warn(`${app} is protected again; replication resumes from the written-back state`);
      return;
    }
  }

  /**
   * Waits until the app is no longer paused, asking the gateway every few seconds; returns at once
   * when `signal` aborts. A failover meanwhile ends the agent like any failover.
   */
  private async waitWhilePaused(err: DrError, signal?: AbortSignal): Promise<void> {
    const { app, client } = this.opts;
    const every =
      this.opts.pausePollMs ?? Math.min(Math.max(this.opts.intervalMs ?? 5000, 1000), 5000);
    const before = this.phase;
    this.phase = 'paused';
    this.lastError = undefined;
    this.log.warn({ err: err.message }, 'replication paused; waiting for the resume');
    this.sendHeartbeat(); // status shows the agent waiting
    try {
      while (!signal?.aborted) {
        await sleep(every, undefined, signal ? { signal } : undefined).catch(() => undefined); // aborted: ends below
        if (signal?.aborted) return;
        let state: ProtectionState;
        try {
          state = await client.protection(app);
        } catch (e) {
          this.log.debug({ err: errorMessage(e) }, 'pause state not readable; asking again');
          continue;
        }
        if (state.state === 'paused') continue;
        if (state.state === 'failed-over') {
          throw new DrError(
            `app ${app} was failed over while its replication was paused (operation ${state.opId ?? '?'})`,
            {
              code: 'app_failed_over',
              subject: app,
              remedy: `stop this agent; fail back with \`dr failback ${app}\` to protect the original site again`,
            },
          );
        }
        this.log.info('replication resumed; resyncing what changed meanwhile');
        return;
      }
    } finally {
      this.phase = before === 'paused' ? 'continuous' : before;
    }
  }

  private startHeartbeat(): void {
    const every = Math.max(1000, Math.min(this.opts.intervalMs ?? 5000, 5000));
    this.sendHeartbeat();
    this.heartbeatTimer = setInterval(() => this.sendHeartbeat(), every);
    this.heartbeatTimer.unref();
  }

  private sendHeartbeat(): void {
    const session = this.session;
    if (!session) return;
    const sentAt = this.now();
    const r = this.lastResync;
    this.opts.client
      .heartbeat(this.opts.app, {
        sessionId: session.sessionId,
        phase: this.phase,
        intervalMs: this.opts.intervalMs ?? 5000,
        backlogBytes: this.backlogBytes,
        ...(this.lastError ? { error: this.lastError } : {}),
        sentAt,
        clockOffsetMs: this.clockOffsetMs,
        trackers: Object.fromEntries(this.volumes.map((v) => [v.name, v.tracking.info])),
        ...(this.lastFreezeMs !== undefined ? { lastFreezeMs: this.lastFreezeMs } : {}),
        ...(r ? { lastResync: { ...r, at: new Date(r.at).toISOString() } } : {}),
        ...(this.ledger
          ? { lastPoint: { id: this.ledger.id, time: this.ledger.time, label: this.ledger.label } }
          : {}),
        ...(this.unchangedAt !== undefined && this.newestPoint
          ? {
              unchanged: {
                point: this.newestPoint.id,
                at: new Date(this.unchangedAt).toISOString(),
              },
            }
          : {}),
      })
      .then(({ serverTime }) => {
        // NTP-style: the gateway answered halfway through the round trip.
        const back = this.now();
        if (Number.isFinite(serverTime))
          this.clockOffsetMs = Math.round(serverTime - (sentAt + back) / 2);
      })
      .catch((err: unknown) =>
        this.log.debug({ err: errorMessage(err) }, 'heartbeat not delivered'),
      );
  }

  /** Releases the session and the lock; safe to call twice. */
  async stop(): Promise<void> {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
    const session = this.session;
    this.session = undefined;
    if (session) {
      // Best effort and bounded: an unreachable gateway lets the lease lapse by itself.
      const giveUp = new AbortController();
      await Promise.race([
        this.opts.client.closeSession(this.opts.app, session.sessionId).catch(() => undefined),
        sleep(3000, undefined, { signal: giveUp.signal }).catch(() => undefined), // cancelled below
      ]);
      giveUp.abort();
    }
    for (const v of this.volumes) {
      await v.tracking
        .close()
        .catch((err: unknown) =>
          this.log.warn(
            { volume: v.name, err: errorMessage(err) },
            'could not remove the trace instance',
          ),
        );
      await v.file.close().catch(() => undefined); // read-only handles: nothing to lose
      await v.lock.release();
    }
    this.volumes = [];
    this.quiescer?.close();
    await this.macState?.close();
    await this.lock?.release();
    this.lock = undefined;
  }
}
