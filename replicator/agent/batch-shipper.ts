import { isDrError } from '../../core/errors.js';
import { sealBlockParts, sealReference } from '../crypto/block-cipher.js';
import type { VolumeKeys } from '../crypto/volume-key.js';
import { encodeBatch } from '../transport/batch-codec.js';
import { DeferredRepeats } from './deferred-repeats.js';
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
  /**
   * A batch holding at least this many bytes goes out before it is full when no batch is on the
   * wire, so the link does not idle while a full batch is sealed (default: a quarter of
   * `batchBytes`).
   */
  eagerBytes?: number;
  inFlight: number;
  /** Bytes on the wire, not yet acknowledged: for heartbeats. */
  onBacklog?: (delta: number) => void;
  /** The same per volume, in plain bytes: + when its batch goes out, - when answered. */
  onVolumeBacklog?: (volume: string, delta: number) => void;
  /** Compression, its adaptive level and the bandwidth cap; without it, zstd level 3 and no cap. */
  link?: WireLink;
  /** Stops a wait for the bandwidth cap. */
  signal?: AbortSignal | undefined;
  /**
   * Whether a block identical to one the gateway holds for the volume (or to one earlier in the
   * same batch) may travel as a reference (the gateway's session says it takes them).
   */
  references?: () => boolean;
}

/** A block sent as a reference, kept until its batch is acknowledged in case the gateway refuses it. */
interface Repeat {
  /** Its record's place in the batch. */
  index: number;
  volume: ShipVolume;
  block: number;
  plain: Buffer;
  mac: Buffer;
}

interface OpenBatch {
  seq: number;
  /** Each record's parts, in order. */
  records: Buffer[][];
  count: number;
  bytes: number;
  intent: Intent;
  /** Plain bytes per volume name, for each volume's backlog. */
  volumeBytes: Record<string, number>;
  repeats: Repeat[];
  /** Plain bytes held for `repeats`. */
  repeatBytes: number;
  /** `volumeId:mac hex` → the block of this batch last sent with that MAC. */
  byMac: Map<string, number>;
  /** `volumeId:block` → the MAC hex it was last sent with in this batch. */
  macOf: Map<string, string>;
}

/** A batch closes once the plaintext it holds for its references reaches this (bounds memory). */
const REPEAT_HOLD_BYTES = 16 * 1024 * 1024;

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
  private readonly unapplied: Array<{
    seq: number;
    intent: Intent;
    contents: Map<string, number>;
    acked: boolean;
  }> = [];
  /** Repeats of blocks on the wire, held until those are acknowledged. */
  private readonly held = new DeferredRepeats<ShipVolume>();
  private failure: unknown;
  blocks = 0;
  plainBytes = 0;
  bytesSent = 0;
  /** Highest acknowledged sequence number. */
  lastAcked = 0;
  /** Blocks sent as references (acknowledged or not), and their plain bytes. */
  repeatedBlocks = 0;
  repeatedBytes = 0;
  /** Batches the gateway refused a reference of, sent again with the data. */
  refusedBatches = 0;

  private readonly eagerBytes: number;

  constructor(private readonly o: BatchShipperOptions) {
    this.eagerBytes = o.eagerBytes ?? Math.max(1, Math.floor(o.batchBytes / 4));
    this.open = this.fresh();
  }

  private fresh(): OpenBatch {
    const seq = this.o.takeSeq();
    return {
      seq,
      records: [],
      count: 0,
      bytes: 0,
      intent: { seq, blocks: {} },
      volumeBytes: {},
      repeats: [],
      repeatBytes: 0,
      byMac: new Map(),
      macOf: new Map(),
    };
  }

  /** Seals one block into the open batch; sends the batch once it is full. */
  async add(volume: ShipVolume, block: number, plain: Buffer, mac: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    // Newer content supersedes what was held for the block.
    this.held.drop(volume.id, block);
    await this.addHeld(false);
    await this.seal(volume, block, plain, mac, true);
  }

  /** Adds the held blocks whose source is acknowledged now (all of them if `all`). */
  private async addHeld(all: boolean): Promise<void> {
    if (this.held.size === 0) return;
    for (const h of this.held.take(all)) await this.seal(h.volume, h.block, h.plain, h.mac, false);
  }

  /** Seals one block into the open batch, or holds it (`mayHold`) when it repeats one on the wire. */
  private async seal(
    volume: ShipVolume,
    block: number,
    plain: Buffer,
    mac: Buffer,
    mayHold: boolean,
  ): Promise<void> {
    const b = this.open;
    const ctx = { app: this.o.app, volume: volume.name, volumeId: volume.id, block, seq: b.seq };
    const hex = mac.toString('hex');
    const source = this.repeatSource(b, volume, hex, mac);
    if (
      source === undefined &&
      mayHold &&
      this.o.references?.() &&
      !mac.equals(volume.keys.zeroMac) &&
      this.held.hold(volume, block, plain, mac, `${volume.id}:${hex}`)
    )
      return;
    let parts: Buffer[];
    if (source === undefined) {
      parts = sealBlockParts(volume.keys, ctx, plain, mac, this.o.link?.compressor);
      this.o.link?.level?.blockSealed(plain.length);
    } else {
      parts = [sealReference(volume.keys, ctx, plain.length, mac, source)];
      // A copy: the caller's buffer is reused for the next read.
      b.repeats.push({ index: b.records.length, volume, block, plain: Buffer.from(plain), mac });
      b.repeatBytes += plain.length;
      this.repeatedBlocks++;
      this.repeatedBytes += plain.length;
    }
    if (!mac.equals(volume.keys.zeroMac)) b.byMac.set(`${volume.id}:${hex}`, block);
    b.macOf.set(`${volume.id}:${block}`, hex);
    b.records.push(parts);
    for (const p of parts) b.bytes += p.length;
    b.count++;
    this.blocks++;
    this.plainBytes += plain.length;
    b.volumeBytes[volume.name] = (b.volumeBytes[volume.name] ?? 0) + plain.length;
    const list = b.intent.blocks[volume.name] ?? [];
    list.push([block, mac.toString('hex')]);
    b.intent.blocks[volume.name] = list;
    if (
      b.bytes >= this.o.batchBytes ||
      b.repeatBytes >= REPEAT_HOLD_BYTES ||
      (this.inFlight.size === 0 && b.bytes >= this.eagerBytes)
    ) {
      this.open = this.fresh();
      await this.dispatch(b);
    }
  }

  /**
   * Sends the open batch (if it holds anything) without waiting for acknowledgements: what a
   * round found goes on the wire while the cut is being taken.
   */
  async flush(): Promise<void> {
    const b = this.open;
    if (b.count === 0) return;
    this.open = this.fresh();
    await this.dispatch(b);
  }

  /**
   * The block this one repeats, when it may travel as a reference: one earlier in the batch that
   * still has this MAC there, else one the gateway acknowledged holding with it.
   */
  private repeatSource(
    b: OpenBatch,
    volume: ShipVolume,
    hex: string,
    mac: Buffer,
  ): number | undefined {
    if (!this.o.references?.() || mac.equals(volume.keys.zeroMac)) return undefined;
    const local = b.byMac.get(`${volume.id}:${hex}`);
    if (local !== undefined && b.macOf.get(`${volume.id}:${local}`) === hex) return local;
    return this.o.macState.repeatOf(volume.name, mac, volume.keys.zeroMac);
  }

  /**
   * Sends the open batch (if it holds anything) and waits for every acknowledgement; blocks
   * held for a batch on the wire go once it is acknowledged, as references.
   */
  async finish(): Promise<void> {
    await this.flush();
    while (this.held.size > 0) {
      await Promise.all(this.inFlight);
      if (this.failure) throw this.failure;
      // Every batch is acknowledged and applied now: each held block's source is held too.
      await this.addHeld(true);
      await this.flush();
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
    const slot = { seq: b.seq, intent: b.intent, contents: b.byMac, acked: false };
    this.unapplied.push(slot);
    this.held.sent(b.seq, b.byMac.keys());
    const p: Promise<void> = this.ship(b, slot)
      .catch((err: unknown) => {
        this.failure ??= err;
      })
      .finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
  }

  private async ship(b: OpenBatch, slot: { acked: boolean }): Promise<void> {
    await this.o.macState.writeIntent(b.intent);
    for (const [v, n] of Object.entries(b.volumeBytes)) this.o.onVolumeBacklog?.(v, n);
    try {
      try {
        await this.sendOnce(b);
      } catch (err) {
        // The gateway no longer holds a block a reference names (collected, or never received):
        // nothing was stored, so the same batch goes again with the data.
        if (b.repeats.length === 0 || !isDrError(err, 'reference_refused')) throw err;
        this.refusedBatches++;
        this.withData(b);
        await this.sendOnce(b);
      }
    } finally {
      for (const [v, n] of Object.entries(b.volumeBytes)) this.o.onVolumeBacklog?.(v, -n);
    }
    b.repeats = [];
    slot.acked = true;
    while (this.unapplied[0]?.acked) {
      const done = this.unapplied.shift() as (typeof this.unapplied)[number];
      this.o.macState.apply(done.intent);
      this.held.applied(done.seq, done.contents.keys());
    }
    this.lastAcked = Math.max(this.lastAcked, b.seq);
  }

  private async sendOnce(b: OpenBatch): Promise<void> {
    const body = encodeBatch(b.seq, b.records.flat(), b.count);
    const bytes = body.reduce((n, x) => n + x.length, 0);
    this.o.onBacklog?.(bytes);
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
    }
    this.bytesSent += bytes;
  }

  /** Seals every block the batch sent as a reference with its data instead. */
  private withData(b: OpenBatch): void {
    for (const r of b.repeats) {
      const ctx = { app: this.o.app, volume: r.volume.name, volumeId: r.volume.id };
      b.records[r.index] = sealBlockParts(
        r.volume.keys,
        { ...ctx, block: r.block, seq: b.seq },
        r.plain,
        r.mac,
        this.o.link?.compressor,
      );
      this.repeatedBlocks--;
      this.repeatedBytes -= r.plain.length;
    }
    b.repeats = [];
  }
}
