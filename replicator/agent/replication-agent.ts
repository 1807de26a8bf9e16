import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AppConfig } from '../../core/config.js';
import { DrError, errorMessage, isDrError } from '../../core/errors.js';
import { type Logger, silentLog } from '../../core/log.js';
import { scanChanges } from '../capture/scan-tracker.js';
import { VolumeFile } from '../capture/volume-file.js';
import { sealBlockParts } from '../crypto/block-cipher.js';
import type { KeyEncryptionKey } from '../crypto/key-encryption-key.js';
import {
  createWrappedVolumeKey,
  MAC_BYTES,
  unwrapVolumeKey,
  type VolumeKeys,
  volumeDigest,
} from '../crypto/volume-key.js';
import { encodeBatch } from '../transport/batch-codec.js';
import type { GatewayClient } from '../transport/gateway-client.js';
import type { Phase, PointInfo, SessionResponse } from '../transport/wire-types.js';
import { absentMacs } from './absent-macs.js';
import { AgentLock } from './agent-lock.js';
import { type Intent, MacState } from './mac-state.js';
import { withRetry } from './retry.js';

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
  log?: Logger;
  onProgress?: (p: SyncProgress) => void;
  now?: () => number;
}

export interface SyncProgress {
  /** `initial-sync` while the DR site has no point of this app yet. */
  phase: Phase;
  volume: string;
  scanned: number;
  size: number;
  sentBytes: number;
}

export interface CycleReport {
  point: PointInfo;
  blocksSent: number;
  bytesSent: number;
  scannedBytes: number;
  ms: number;
}

interface OpenVolume {
  name: string;
  id: number;
  file: VolumeFile;
  size: number;
  blockSize: number;
  keys: VolumeKeys;
}

interface PendingBatch {
  seq: number;
  /** The records' parts, in order. */
  records: Buffer[];
  count: number;
  bytes: number;
  intent: Intent;
}

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
  private volumes: OpenVolume[] = [];
  private macState: MacState | undefined;
  private nextSeq = 1;
  private lastAcked = 0;
  private phase: Phase = 'initial-sync';
  private lastError: string | undefined;
  private backlogBytes = 0;
  private heartbeatTimer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: AgentOptions) {
    this.log = (opts.log ?? silentLog).child({ app: opts.app });
    this.now = opts.now ?? Date.now;
  }

  /** Takes the lock, opens the volumes and the gateway session, and recovers from any crash. */
  async start(signal?: AbortSignal): Promise<void> {
    const { app, appConfig, client, kek, stateDir } = this.opts;
    this.macState = await MacState.open(stateDir);
    this.lock = await AgentLock.acquire(stateDir, app);
    let opened: Array<{ file: VolumeFile }> = [];
    try {
      const files: Array<{ name: string; file: VolumeFile; size: number }> = [];
      opened = files;
      for (const v of appConfig.volumes) {
        const file = await VolumeFile.open(v.name, v.path);
        files.push({ name: v.name, file, size: await file.size() });
      }
      const session = await withRetry(
        () =>
          client.openSession(app, {
            agentId: `${hostname()}:${process.pid}`,
            host: hostname(),
            pid: process.pid,
            ...(this.lock?.previousSession ? { replaces: this.lock.previousSession } : {}),
            volumes: files.map((f) => ({
              name: f.name,
              size: f.size,
              blockSize: appConfig.blockSize,
              wrappedKey: createWrappedVolumeKey(kek, app, f.name).toString('base64'),
            })),
          }),
        { what: 'open session', log: this.log, signal },
      );
      this.session = session;
      await this.lock.recordSession(session.sessionId);
      this.phase = session.latestPoint ? 'continuous' : 'initial-sync';
      this.lastAcked = session.committedSeq;
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
        const keys = unwrapVolumeKey(
          kek,
          Buffer.from(info.wrappedKey, 'base64'),
          app,
          f.name,
          info.blockSize,
        );
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
      for (const f of opened)
        if (!this.volumes.some((v) => v.file === f.file)) await f.file.close();
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
          if (!isDrError(err, 'session_lost')) throw err;
          await this.reopen(session, signal);
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

  /** Ships every block that changed since the gateway's copy and commits one recovery point. */
  async cycle(signal?: AbortSignal): Promise<CycleReport> {
    const { app, client } = this.opts;
    const session = this.session;
    const macState = this.macState;
    if (!session || !macState) throw new Error('agent not started');
    const started = this.now();
    const batchBytes = this.opts.batchBytes ?? 4 * 1024 * 1024;
    const inFlightMax = this.opts.inFlight ?? 4;
    const inFlight = new Set<Promise<void>>();
    let failure: unknown;
    let blocksSent = 0;
    let bytesSent = 0;
    let scannedBytes = 0;

    const send = async (batch: PendingBatch): Promise<void> => {
      const body = encodeBatch(batch.seq, batch.records, batch.count);
      const bodyBytes = body.reduce((n, b) => n + b.length, 0);
      await macState.writeIntent(batch.intent);
      this.backlogBytes += bodyBytes;
      try {
        await this.call(`batch ${batch.seq}`, (id) => client.sendBatch(app, id, body), signal);
      } finally {
        this.backlogBytes -= bodyBytes;
      }
      this.lastError = undefined;
      macState.apply(batch.intent);
      this.lastAcked = Math.max(this.lastAcked, batch.seq);
      bytesSent += bodyBytes;
    };
    const dispatch = async (batch: PendingBatch): Promise<void> => {
      while (inFlight.size >= inFlightMax) await Promise.race(inFlight);
      if (failure) throw failure;
      const p: Promise<void> = send(batch)
        .catch((err: unknown) => {
          failure ??= err;
        })
        .finally(() => inFlight.delete(p));
      inFlight.add(p);
    };
    const newBatch = (seq: number): PendingBatch => ({
      seq,
      records: [],
      count: 0,
      bytes: 0,
      intent: { seq, blocks: {} },
    });

    let batch = newBatch(this.nextSeq++);
    try {
      for (const v of this.volumes) {
        const size = await v.file.size();
        if (size !== v.size) {
          throw new DrError(
            `volume ${v.name} (${v.file.path}) changed size from ${v.size} to ${size} bytes while the agent was running`,
            {
              code: 'volume_resized',
              subject: v.file.path,
              remedy:
                'restart the agent to protect the new size (the next point covers it); nothing already replicated is lost',
            },
          );
        }
        const macs = macState.macs.get(v.name);
        if (!macs) throw new Error(`no MAC state for ${v.name}`);
        let sentForVolume = 0;
        for await (const changed of scanChanges({
          volume: v.file,
          size: v.size,
          blockSize: v.blockSize,
          macKey: v.keys.mac,
          known: macs,
          onProgress: (scanned) => {
            this.opts.onProgress?.({
              phase: this.phase,
              volume: v.name,
              scanned,
              size: v.size,
              sentBytes: sentForVolume,
            });
          },
        })) {
          signal?.throwIfAborted();
          const record = sealBlockParts(
            v.keys,
            { app, volume: v.name, volumeId: v.id, block: changed.block, seq: batch.seq },
            changed.plain,
            changed.mac,
          );
          for (const part of record) {
            batch.records.push(part);
            batch.bytes += part.length;
          }
          batch.count++;
          sentForVolume += changed.plain.length;
          blocksSent++;
          const list = batch.intent.blocks[v.name] ?? [];
          list.push([changed.block, changed.mac.toString('hex')]);
          batch.intent.blocks[v.name] = list;
          if (batch.bytes >= batchBytes) {
            await dispatch(batch);
            batch = newBatch(this.nextSeq++);
          }
        }
        scannedBytes += v.size;
      }
      if (batch.count > 0) await dispatch(batch);
      else this.nextSeq--; // the empty batch was never sent: its number stays free
      await Promise.all(inFlight);
      if (failure) throw failure;
      await macState.flush();

      const volumes: Record<string, { size: number; digest: string }> = {};
      for (const v of this.volumes) {
        const macs = macState.macs.get(v.name) as Buffer;
        volumes[v.name] = {
          size: v.size,
          digest: volumeDigest(v.keys.mac, v.size, macs).toString('hex'),
        };
      }
      const point = await this.call(
        'commit point',
        (sessionId) =>
          client.commit(app, {
            sessionId,
            upToSeq: this.lastAcked,
            label: 'fuzzy',
            time: new Date(this.now()).toISOString(),
            volumes,
          }),
        signal,
      );
      this.phase = 'continuous';
      this.lastError = undefined;
      const ms = this.now() - started;
      this.log.info({ point: point.id, blocksSent, bytesSent, ms }, 'recovery point committed');
      return { point, blocksSent, bytesSent, scannedBytes, ms };
    } catch (err) {
      // Whatever was acknowledged stays recorded; the rest is found again by the next scan.
      await Promise.allSettled(inFlight);
      await macState.flush().catch(() => undefined); // best effort: a missed flush only resends blocks
      this.lastError = errorMessage(err);
      throw err;
    }
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
    await this.start(signal);
    try {
      while (!signal?.aborted) {
        const t0 = this.now();
        try {
          last = await this.cycle(signal);
        } catch (err) {
          if (once || signal?.aborted) throw err;
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

  private startHeartbeat(): void {
    const every = Math.max(1000, Math.min(this.opts.intervalMs ?? 5000, 5000));
    this.sendHeartbeat();
    this.heartbeatTimer = setInterval(() => this.sendHeartbeat(), every);
    this.heartbeatTimer.unref();
  }

  private sendHeartbeat(): void {
    const session = this.session;
    if (!session) return;
    this.opts.client
      .heartbeat(this.opts.app, {
        sessionId: session.sessionId,
        phase: this.phase,
        intervalMs: this.opts.intervalMs ?? 5000,
        backlogBytes: this.backlogBytes,
        ...(this.lastError ? { error: this.lastError } : {}),
        sentAt: this.now(),
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
    for (const v of this.volumes) await v.file.close().catch(() => undefined); // read-only handles: nothing to lose
    this.volumes = [];
    await this.macState?.close();
    await this.lock?.release();
    this.lock = undefined;
  }
}
