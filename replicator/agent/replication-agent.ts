/** The source-side agent of one app, composed of its parts: volume set, gateway session, resume, cycles, waits. */
import { setTimeout as sleep } from 'node:timers/promises';
import { errorMessage, isDrError } from '../../core/errors.js';
import { type Logger, silentLog } from '../../core/log.js';
import type { KeyEncryptionKey } from '../crypto/key-encryption-key.js';
import type { GatewayClient } from '../transport/gateway-client.js';
import { AgentLock } from './agent-lock.js';
import type { AgentSettings } from './agent-settings.js';
import { AgentStatus } from './agent-status.js';
import { BatchSequence } from './batch-sequence.js';
import { BatchShipper } from './batch-shipper.js';
import type { OpenVolume, ResyncReport, SyncProgress } from './cut.js';
import { type CycleReport, CycleRunner } from './cycle-runner.js';
import { GatewaySession } from './gateway-session.js';
import { MacState } from './mac-state.js';
import { PointChain } from './point-chain.js';
import type { LedgerEntry } from './point-ledger.js';
import { standBy, waitWhilePaused } from './protection-wait.js';
import { bindVolumes, replayCrashIntents, sameStore } from './resume-reconciliation.js';
import type { Shipper } from './shipper.js';
import { VolumeSet } from './volume-set.js';
import { WireLink } from './wire-link.js';

export type { ResyncReport, SyncProgress } from './cut.js';
export type { CycleReport } from './cycle-runner.js';

export interface AgentOptions {
  /** Resolved once from config (`resolveAgentSettings`): the agent adds no defaults of its own. */
  settings: AgentSettings;
  client: GatewayClient;
  kek: KeyEncryptionKey;
  log?: Logger;
  onProgress?: (p: SyncProgress) => void;
  /** Told as batches are acknowledged and cycles end, for metrics; never throws back into the agent. */
  observe?: AgentObserver;
  now?: () => number;
  /** Compression and bandwidth cap (agent.compression, agent.maxRate); default zstd adapted to the link, no cap. */
  link?: WireLink;
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

/** What a started agent holds until it stops. */
interface Started {
  lock: AgentLock;
  macState: MacState;
  volumeSet: VolumeSet;
  session: GatewaySession;
  volumes: OpenVolume[];
  runner: CycleRunner;
}

/**
 * The source-side agent for one app: scans its volumes, ships changed blocks
 * encrypted in sequence-numbered batches, and commits one recovery point for
 * all of them per cycle.
 */
export class ReplicationAgent {
  private readonly s: AgentSettings;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly status = new AgentStatus();
  private readonly chain: PointChain;
  private started: Started | undefined;
  /** One for the agent's life: the level it learnt and the cap's bucket carry over between cycles. */
  readonly link: WireLink;

  constructor(private readonly opts: AgentOptions) {
    this.s = opts.settings;
    this.log = (opts.log ?? silentLog).child({ app: this.s.app });
    this.now = opts.now ?? Date.now;
    this.chain = new PointChain(this.s.app, opts.kek, this.s.stateDir, this.log);
    this.link = opts.link ?? new WireLink();
  }

  /** The last point this agent committed (its own view, to set beside the gateway's). */
  get lastPoint(): LedgerEntry | undefined {
    return this.chain.ledger;
  }

  /** Takes the lock, opens the volumes and the gateway session, and recovers from any crash. */
  async start(signal?: AbortSignal): Promise<void> {
    const { app, appConfig, stateDir } = this.s;
    const { client, kek } = this.opts;
    const log = this.log;
    const macState = await MacState.open(stateDir);
    let lock: AgentLock | undefined;
    let volumeSet: VolumeSet | undefined;
    let session: GatewaySession | undefined;
    try {
      lock = await AgentLock.acquire(stateDir, app);
      volumeSet = await VolumeSet.open({
        app,
        appConfig,
        tracker: this.s.tracker,
        trace: this.s.trace,
        fullCopy: this.s.fullCopy,
        log,
        now: this.now,
      });
      let seq: BatchSequence | undefined;
      session = new GatewaySession({
        app,
        client,
        kek,
        blockSize: appConfig.blockSize,
        lock,
        log,
        now: this.now,
        onReopen: async (next) => {
          await this.chain.adopt(next);
          seq?.continueAfter(next.lastSeq);
        },
        onTransient: (err) => {
          this.status.lastError = errorMessage(err);
        },
        onHeartbeatAnswer: ({ throttle }) => {
          if (this.link.applyThrottle(throttle))
            log.info(
              { maxRate: throttle?.maxRate ?? null, by: throttle?.by },
              throttle?.maxRate ? 'bandwidth cap set from chat' : 'bandwidth cap from chat removed',
            );
        },
      });
      const opened = await session.open(volumeSet.volumes, signal);
      const sequence = new BatchSequence(opened.lastSeq, opened.committedSeq);
      seq = sequence;
      this.status.phase = opened.latestPoint ? 'continuous' : 'initial-sync';
      this.status.newestPoint = opened.latestPoint ?? undefined;
      const trustStore = sameStore(macState, opened);
      const resume = { app, blockSize: appConfig.blockSize, kek, macState, session: opened };
      const volumes = await bindVolumes(volumeSet.volumes, { ...resume, client, log, signal });
      // After the keys unwrapped (a wrong KEK is named as such, not as a forged point).
      await this.chain.adopt(opened);
      await replayCrashIntents(volumes, macState, opened, trustStore);
      const runner = new CycleRunner({
        app,
        volumes,
        macState,
        quiescer: volumeSet.quiescer,
        session,
        chain: this.chain,
        seq: sequence,
        status: this.status,
        client,
        shipper: (s) => this.shipper(macState, session as GatewaySession, sequence, s),
        log,
        now: this.now,
        onProgress: (p) => {
          if (p.phase === 'initial-sync')
            this.status.initialSync.set(p.volume, { doneBytes: p.scanned, sizeBytes: p.size });
          else this.status.initialSync.clear();
          this.opts.onProgress?.(p);
        },
        onResync: (r) => this.opts.observe?.resync?.(r),
      });
      this.started = { lock, macState, volumeSet, session, volumes, runner };
      session.startHeartbeats(this.s.pollMs, () => this.heartbeatStatus());
    } catch (err) {
      await session?.close();
      await volumeSet?.close();
      await macState.close();
      await lock?.release();
      throw err;
    }
  }

  /** This cycle's shipper: sealed batches, a few on the wire at once, each sent with the session. */
  private shipper(
    macState: MacState,
    session: GatewaySession,
    seq: BatchSequence,
    signal?: AbortSignal,
  ): Shipper {
    const { app, batchBytes, inFlight } = this.s;
    const { client, observe } = this.opts;
    return new BatchShipper({
      app,
      macState,
      takeSeq: () => seq.take(),
      returnSeq: (n) => seq.giveBack(n),
      send: async (n, body) => {
        const t0 = this.now();
        await session.call(`batch ${n}`, (id) => client.sendBatch(app, id, body), signal);
        this.status.lastError = undefined;
        observe?.batch?.({
          bytes: body.reduce((sum, b) => sum + b.length, 0),
          ms: this.now() - t0,
        });
      },
      batchBytes,
      inFlight,
      onBacklog: (d) => {
        this.status.backlogBytes += d;
      },
      onVolumeBacklog: (v, d) => {
        const m = this.status.volumeBacklog;
        m.set(v, Math.max(0, (m.get(v) ?? 0) + d));
      },
      link: this.link,
      signal,
      references: () => session.current?.references === true,
    });
  }

  /**
   * One cycle: pre-copy rounds, the cut, and one point for all volumes (see `CycleRunner`).
   * The agent must be started.
   */
  cycle(signal?: AbortSignal): Promise<CycleReport> {
    if (!this.started) return Promise.reject(new Error('agent not started'));
    return this.started.runner.cycle(signal);
  }

  /**
   * Runs cycles until `signal` aborts (or once); errors are logged and retried next cycle. When
   * the app is failed over, the agent stands by (`standBy`) and replicates again by itself once a
   * failback protects the app again; a one-shot run throws instead.
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
        if (!once && !signal?.aborted && isDrError(err, 'store_replaced')) {
          // What this agent believes delivered may be missing there (the lost machine's tail):
          // a new start reads the MACs the new store holds and sends every block that differs.
          this.log.warn(
            { err: errorMessage(err) },
            'the gateway store was replaced; starting again against it',
          );
          // Handled by starting again: the new session's heartbeats must not report it as stalled.
          this.status.lastError = undefined;
          continue;
        }
        if (once || signal?.aborted || !isDrError(err, 'app_failed_over')) throw err;
        await standBy(err, this.waitOptions(signal));
        // The refusal that sent it to stand by is over: heartbeats must not report it as stalled.
        this.status.lastError = undefined;
      }
    }
    return last;
  }

  private async runProtected(
    once: boolean,
    signal: AbortSignal | undefined,
    onCycle: (r: CycleReport) => void,
  ): Promise<CycleReport | undefined> {
    let last: CycleReport | undefined;
    // Started while paused: wait for the resume (a one-shot run says so and stops).
    for (;;) {
      try {
        await this.start(signal);
        break;
      } catch (err) {
        if (once || signal?.aborted || !isDrError(err, 'app_paused')) throw err;
        await waitWhilePaused(err, this.waitOptions(signal));
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
          this.heartbeat(); // status shows the new point's freeze and resync at once
        } catch (err) {
          this.opts.observe?.cycleFailed?.(err);
          // Failed over: the DR copy is production now; this agent stops replicating. A replaced
          // store (a gateway machine lost, fetched back from the bucket) means starting again.
          if (
            once ||
            signal?.aborted ||
            isDrError(err, 'app_failed_over') ||
            isDrError(err, 'store_replaced')
          )
            throw err;
          if (isDrError(err, 'app_paused')) {
            // Paused: no new points until resumed. Tracking goes on; the failed cycle left the
            // volumes distrusted, so the first cycle after the resume resyncs them by MAC.
            await waitWhilePaused(err, this.waitOptions(signal));
            continue;
          }
          this.log.error(
            { err: errorMessage(err) },
            'replication cycle failed; retrying next cycle',
          );
          this.heartbeat();
        }
        if (once) break;
        // The interval is a period: the next cycle starts an interval after this one started.
        const wait = Math.max(0, this.s.intervalMs - (this.now() - t0));
        await sleep(wait, undefined, signal ? { signal } : undefined).catch(() => undefined); // aborted: the loop ends
      }
    } finally {
      await this.stop();
    }
    return last;
  }

  /** How the agent waits on a paused or failed-over app (see protection-wait.ts). */
  private waitOptions(signal?: AbortSignal) {
    return {
      client: this.opts.client,
      app: this.s.app,
      everyMs: this.s.pollMs,
      log: this.log,
      signal,
      status: this.status,
      heartbeat: () => this.heartbeat(),
    };
  }

  private heartbeatStatus() {
    return {
      ...this.status.heartbeat(
        this.s.intervalMs,
        this.started?.volumes ?? [],
        this.chain.ledger,
        this.now(),
      ),
      link: this.link.state(),
    };
  }

  private heartbeat(): void {
    this.started?.session.heartbeat(this.heartbeatStatus());
  }

  /** Releases the session and the lock; safe to call twice. */
  async stop(): Promise<void> {
    const s = this.started;
    this.started = undefined;
    if (!s) return;
    await s.session.close();
    await s.volumeSet.close();
    await s.macState.close();
    await s.lock.release();
  }
}
