import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AppConfig } from '../../core/config.js';
import { DrError, errorMessage, isDrError } from '../../core/errors.js';
import { type Logger, silentLog } from '../../core/log.js';
import { Quiescer } from '../capture/quiesce.js';
import { VolumeFile } from '../capture/volume-file.js';
import type { KeyEncryptionKey } from '../crypto/key-encryption-key.js';
import {
  createWrappedVolumeKey,
  MAC_BYTES,
  volumeDigest,
  volumeKeysOf,
} from '../crypto/volume-key.js';
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
  frozenCut,
  type OpenVolume,
  type ResyncReport,
  type SyncProgress,
  shipRound,
} from './cut.js';

export type { ResyncReport, SyncProgress } from './cut.js';

import { lockDevice } from './device-lock.js';
import { MacState } from './mac-state.js';
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
  /** The newest point on the gateway, and the sequence number it covers up to. */
  private lastPoint: PointInfo | undefined;
  private committedSeq = 0;
  /** The last cycle found no change since `lastPoint`, at this agent time. */
  private unchangedAt: number | undefined;
  /** Gateway clock minus ours, from heartbeat round trips. */
  private clockOffsetMs = 0;

  constructor(private readonly opts: AgentOptions) {
    this.log = (opts.log ?? silentLog).child({ app: opts.app });
    this.now = opts.now ?? Date.now;
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
        const file = await VolumeFile.open(v.name, v.path);
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
      this.lastPoint = session.latestPoint ?? undefined;
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
      if (this.quiescer?.enabled) {
        const cut = await frozenCut(this.cutContext(), this.quiescer, shipper, signal);
        label = cut.label;
        cutAt = cut.at;
        freezeMs = cut.freezeMs;
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
      const prior = this.lastPoint;
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
      const point = await this.call(
        'commit point',
        (sessionId) =>
          client.commit(app, {
            sessionId,
            upToSeq,
            label,
            time: new Date(cutAt).toISOString(),
            clockOffsetMs: this.clockOffsetMs,
            volumes,
          }),
        signal,
      );
      this.lastAcked = upToSeq;
      this.committedSeq = upToSeq;
      this.lastPoint = point;
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

  /** Runs cycles until `signal` aborts (or once); errors are logged and retried next cycle. */
  async run({
    once = false,
    signal,
  }: {
    once?: boolean;
    signal?: AbortSignal;
  } = {}): Promise<CycleReport | undefined> {
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
          this.opts.observe?.cycle?.(last);
          this.sendHeartbeat(); // status shows the new point's freeze and resync at once
        } catch (err) {
          this.opts.observe?.cycleFailed?.(err);
          // Failed over: the DR copy is production now; this agent must stop, saying why.
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
        ...(this.unchangedAt !== undefined && this.lastPoint
          ? {
              unchanged: { point: this.lastPoint.id, at: new Date(this.unchangedAt).toISOString() },
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
