import { sealBlockParts } from '../crypto/block-cipher.js';
import type { VolumeKeys } from '../crypto/volume-key.js';
import { encodeBatch } from '../transport/batch-codec.js';
import type { Intent, MacState } from './mac-state.js';
import type { WireLink } from './wire-link.js';

/** A volume as the shipper seals it. */
export interface ShipVolume {
  name: string;
  id: number;
  keys: VolumeKeys;
}

export interface BatchShipperOptions {
  app: string;
  macState: MacState;
  /** Takes the next batch sequence number. */
  takeSeq: () => number;
  /** Gives back a number taken for a batch that never got a record. */
  returnSeq: (seq: number) => void;
  /** Sends one encoded batch and resolves once the gateway has made it durable. */
  send: (seq: number, body: Buffer[]) => Promise<void>;
  batchBytes: number;
  inFlight: number;
  /** Bytes on the wire, not yet acknowledged: for heartbeats. */
  onBacklog?: (delta: number) => void;
  /** The same per volume, in plain bytes: + when its batch goes out, - when answered. */
  onVolumeBacklog?: (volume: string, delta: number) => void;
  /** Compression, its adaptive level and the bandwidth cap; without it, zstd level 3 and no cap. */
  link?: WireLink;
  /** Stops a wait for the bandwidth cap. */
  signal?: AbortSignal | undefined;
}

interface OpenBatch {
  seq: number;
  parts: Buffer[];
  count: number;
  bytes: number;
  intent: Intent;
  /** Plain bytes per volume name, for each volume's backlog. */
  volumeBytes: Record<string, number>;
}

/**
 * Seals changed blocks into sequence-numbered batches and keeps a few on the
 * wire at once. A batch's MACs go to the intent log before it is sent and
 * into the MAC state once it is acknowledged; the first failure stops it.
 *
 * Acknowledgements may come back out of order, while the gateway keeps, for a block sent in two
 * batches, the one of the higher seq. So the MACs are applied in seq order: an acknowledged batch
 * waits for every earlier one. Applied out of order, a block rewritten between two rounds kept the
 * older MAC here and the point's digest disagreed with the gateway's blocks (a drill then refused
 * the point as store_corrupt). A batch that fails holds back the later ones: their blocks are
 * resent, never assumed held.
 */
export class BatchShipper {
  private open: OpenBatch;
  private readonly inFlight = new Set<Promise<void>>();
  /** Dispatched batches in seq order, until they and every earlier one are acknowledged. */
  private readonly unapplied: Array<{ intent: Intent; acked: boolean }> = [];
  private failure: unknown;
  blocks = 0;
  plainBytes = 0;
  bytesSent = 0;
  /** Highest acknowledged sequence number. */
  lastAcked = 0;

  constructor(private readonly o: BatchShipperOptions) {
    this.open = this.fresh();
  }

  private fresh(): OpenBatch {
    const seq = this.o.takeSeq();
    return { seq, parts: [], count: 0, bytes: 0, intent: { seq, blocks: {} }, volumeBytes: {} };
  }

  /** Seals one block into the open batch; sends the batch once it is full. */
  async add(volume: ShipVolume, block: number, plain: Buffer, mac: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    const b = this.open;
    const parts = sealBlockParts(
      volume.keys,
      { app: this.o.app, volume: volume.name, volumeId: volume.id, block, seq: b.seq },
      plain,
      mac,
      this.o.link?.compressor,
    );
    this.o.link?.level?.blockSealed(plain.length);
    for (const p of parts) {
      b.parts.push(p);
      b.bytes += p.length;
    }
    b.count++;
    this.blocks++;
    this.plainBytes += plain.length;
    b.volumeBytes[volume.name] = (b.volumeBytes[volume.name] ?? 0) + plain.length;
    const list = b.intent.blocks[volume.name] ?? [];
    list.push([block, mac.toString('hex')]);
    b.intent.blocks[volume.name] = list;
    if (b.bytes >= this.o.batchBytes) {
      this.open = this.fresh();
      await this.dispatch(b);
    }
  }

  /** Sends the open batch (if it holds anything) and waits for every acknowledgement. */
  async finish(): Promise<void> {
    const b = this.open;
    if (b.count > 0) {
      this.open = this.fresh();
      await this.dispatch(b);
    }
    await Promise.all(this.inFlight);
    if (this.failure) throw this.failure;
  }

  /** Waits for what is on the wire without throwing (after a failure elsewhere). */
  async settle(): Promise<void> {
    await Promise.allSettled(this.inFlight);
  }

  /** Returns the number of the open batch if nothing went into it. */
  close(): void {
    if (this.open.count === 0) this.o.returnSeq(this.open.seq);
  }

  private async dispatch(b: OpenBatch): Promise<void> {
    while (this.inFlight.size >= this.o.inFlight) await Promise.race(this.inFlight);
    if (this.failure) throw this.failure;
    const slot = { intent: b.intent, acked: false };
    this.unapplied.push(slot);
    const p: Promise<void> = this.ship(b, slot)
      .catch((err: unknown) => {
        this.failure ??= err;
      })
      .finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
  }

  private async ship(b: OpenBatch, slot: { acked: boolean }): Promise<void> {
    const body = encodeBatch(b.seq, b.parts, b.count);
    const bytes = body.reduce((n, x) => n + x.length, 0);
    await this.o.macState.writeIntent(b.intent);
    this.o.onBacklog?.(bytes);
    for (const [v, n] of Object.entries(b.volumeBytes)) this.o.onVolumeBacklog?.(v, n);
    const level = this.o.link?.level;
    let sent = 0;
    try {
      await this.o.link?.limiter.take(bytes, this.o.signal);
      level?.sendStarted();
      try {
        await this.o.send(b.seq, body);
        sent = bytes;
      } finally {
        level?.sendEnded(sent);
      }
    } finally {
      this.o.onBacklog?.(-bytes);
      for (const [v, n] of Object.entries(b.volumeBytes)) this.o.onVolumeBacklog?.(v, -n);
    }
    slot.acked = true;
    while (this.unapplied[0]?.acked)
      this.o.macState.apply((this.unapplied.shift() as { intent: Intent }).intent);
    this.lastAcked = Math.max(this.lastAcked, b.seq);
    this.bytesSent += bytes;
  }
}
