/** One volume of a point served on demand: blocks fetched, authenticated and kept as they are read, the rest hydrated behind. */
import { constants } from 'node:fs';
import { type FileHandle, open, unlink } from 'node:fs/promises';
import { DrError } from '../../core/errors.js';
import {
  blockMac,
  MAC_BYTES,
  type VolumeKeys,
  volumeDigest,
  volumeKeysOf,
} from '../crypto/volume-key.js';
import type { VolumeInfo } from '../transport/wire-types.js';
import { hydrationOrder } from './hydration-order.js';
import { fetchVerifiedBlocks, volumeFailure, withGatewayRetry } from './on-demand-fetch.js';
import type { HydrationState, OnDemandOptions } from './on-demand-types.js';
import { requireSignedRecord } from './point-check.js';
import { readFully, writeBlocks, writeZeros } from './volume-file.js';

/** Blocks fetched together on a miss (read-ahead around the block a reader needs). */
const CHUNK_BLOCKS = 16;
/** Chunks the hydrator asks for in one request. */
const HYDRATE_RUN_CHUNKS = 16;
/** Hydrator requests in flight: low priority beside the reads a server waits on. */
const HYDRATE_PARALLEL = 2;

/**
 * A point's volume as a local file that fills itself in. `read`/`write` serve a reader (the FUSE
 * layer); a block not yet local is fetched from the gateway with the blocks around it, checked
 * against the block MACs that the agent's signed digest vouches for, kept, then served.
 * `hydrate()` copies the rest, the chunks next to what readers touched first. Once whole, reads
 * are plain file reads (pass-through).
 */
export class OnDemandVolume {
  readonly name: string;
  readonly size: number;
  readonly path: string;
  readonly #o: OnDemandOptions;
  readonly #info: VolumeInfo;
  readonly #keys: VolumeKeys;
  readonly #blockSize: number;
  readonly #blocks: number;
  readonly #chunks: number;
  /** The MAC every block must have at this point (authenticated through the point's digest). */
  #macs: Buffer = Buffer.alloc(0);
  /** Blocks the gateway holds a record for; the others are zeros. */
  #stored = new Set<number>();
  #local: Uint8Array;
  #localChunks = 0;
  #localBlocks = 0;
  #inflight = new Map<number, Promise<void>>();
  #hot: number[] = [];
  #fh: FileHandle | undefined;
  #verifyLocal = false;
  #retries = 0;
  #hydratedAt: number | undefined;
  #failed: DrError | undefined;
  #closed = false;
  #whole: { promise: Promise<void>; resolve: () => void; reject: (e: unknown) => void };

  private constructor(o: OnDemandOptions, info: VolumeInfo, size: number) {
    this.#o = o;
    this.name = o.volume;
    this.path = o.path;
    this.size = size;
    this.#info = info;
    this.#keys = volumeKeysOf(o.kek, o.app, info);
    this.#blockSize = info.blockSize;
    this.#blocks = Math.ceil(size / info.blockSize);
    this.#chunks = Math.ceil(this.#blocks / CHUNK_BLOCKS);
    this.#local = new Uint8Array(this.#chunks);
    let resolve!: () => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(() => undefined); // observed through whole(); a failure is also in state()
    this.#whole = { promise, resolve, reject };
  }

  /**
   * Checks the point's record and its block MACs against the digest the agent committed, and
   * opens the local copy. Fetches no block.
   */
  static async open(o: OnDemandOptions): Promise<OnDemandVolume> {
    const { point, volume, app } = o;
    const info = point.volumeInfo.find((v) => v.name === volume);
    const pv = point.volumes[volume];
    if (!info || !pv) {
      throw new DrError(`point ${point.id} of ${app} has no volume ${JSON.stringify(volume)}`, {
        code: 'point_unknown',
        subject: volume,
        remedy: `use one of: ${Object.keys(point.volumes).join(', ')}`,
      });
    }
    requireSignedRecord(o.kek, app, point);
    const v = new OnDemandVolume(o, info, pv.size);
    await v.#loadMacs(pv.digest);
    await v.#openLocal();
    return v;
  }

  async #loadMacs(digest: string): Promise<void> {
    const { client, app, point, volume } = this.#o;
    const stored = await this.#withRetry(() => client.macs(app, point.id, volume));
    const macs = Buffer.allocUnsafe(this.#blocks * MAC_BYTES);
    for (let b = 0; b < this.#blocks; b++) {
      const mac = stored.get(b) ?? this.#zeroMac(b);
      mac.copy(macs, b * MAC_BYTES);
    }
    const beyond = [...stored.keys()].find((b) => b >= this.#blocks);
    if (
      beyond !== undefined ||
      volumeDigest(this.#keys.mac, this.size, macs).toString('hex') !== digest
    ) {
      throw new DrError(
        `${app}/${volume} at point ${point.id}: the gateway's block list does not match the digest its agent committed`,
        {
          code: 'store_corrupt',
          subject: `${app}/${volume}@${point.id}`,
          remedy: 'recover an older point; check the gateway store for tampering',
        },
      );
    }
    this.#macs = macs;
    for (const b of stored.keys()) this.#stored.add(b);
  }

  #zeroMac(block: number): Buffer {
    const len = this.#blockLen(block);
    return len === this.#blockSize
      ? this.#keys.zeroMac
      : blockMac(this.#keys.mac, Buffer.alloc(len));
  }

  #blockLen(block: number): number {
    return Math.min(this.#blockSize, this.size - block * this.#blockSize);
  }

  async #openLocal(): Promise<void> {
    const flags = constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW;
    if (!this.#o.reuse) await unlink(this.path).catch(() => undefined); // none there yet
    const fh = await open(this.path, flags, 0o600);
    const { size } = await fh.stat();
    this.#verifyLocal = size > 0;
    await fh.truncate(this.size);
    this.#fh = fh;
    // In a fresh file, a chunk the gateway holds nothing for is already right: it is a hole.
    if (!this.#verifyLocal) {
      for (let c = 0; c < this.#chunks; c++) if (!this.#chunkStored(c)) this.#markChunk(c);
    }
    this.#checkWhole();
  }

  #chunkStored(c: number): boolean {
    const end = Math.min(this.#blocks, (c + 1) * CHUNK_BLOCKS);
    for (let b = c * CHUNK_BLOCKS; b < end; b++) if (this.#stored.has(b)) return true;
    return false;
  }

  #markChunk(c: number): void {
    if (this.#local[c]) return;
    this.#local[c] = 1;
    this.#localChunks++;
    this.#localBlocks += Math.min(this.#blocks, (c + 1) * CHUNK_BLOCKS) - c * CHUNK_BLOCKS;
  }

  #checkWhole(): void {
    if (this.#localChunks === this.#chunks && this.#hydratedAt === undefined) {
      this.#hydratedAt = Date.now();
      this.#whole.resolve();
    }
  }

  state(): HydrationState {
    return {
      volume: this.name,
      size: this.size,
      blocksTotal: this.#blocks,
      blocksLocal: this.#localBlocks,
      retries: this.#retries,
      ...(this.#hydratedAt !== undefined ? { hydratedAt: this.#hydratedAt } : {}),
      ...(this.#failed ? { failed: this.#failed.message } : {}),
    };
  }

  /** Resolves when every block is local; rejects when the volume failed. */
  whole(): Promise<void> {
    return this.#whole.promise;
  }

  /** Reads `length` bytes at `position` into `into`; resolves the bytes read (0 past the end). */
  async read(into: Buffer, length: number, position: number): Promise<number> {
    const len = Math.max(0, Math.min(length, this.size - position));
    if (len === 0) return 0;
    await this.#ensureRange(position, len);
    return readFully(this.#handle(), into, len, position);
  }

  /** Writes through to the local copy, after the blocks it touches are local (so nothing overwrites it later). */
  async write(from: Buffer, length: number, position: number): Promise<number> {
    const len = Math.max(0, Math.min(length, this.size - position));
    if (len === 0) {
      throw new DrError(`write past the end of ${this.name} (${this.size} bytes)`, {
        code: 'provider_failed',
        subject: this.name,
        remedy: 'a recovered volume keeps the size it had at the point',
      });
    }
    await this.#ensureRange(position, len);
    const fh = this.#handle();
    let done = 0;
    while (done < len) {
      const { bytesWritten } = await fh.write(from, done, len - done, position + done);
      done += bytesWritten;
    }
    return len;
  }

  async sync(): Promise<void> {
    await this.#handle().datasync();
  }

  #handle(): FileHandle {
    if (this.#failed) throw this.#failed;
    if (!this.#fh) {
      throw new DrError(`${this.name} is closed`, {
        code: 'provider_failed',
        subject: this.name,
        remedy: 'the recovery was cleaned up; start a new one',
      });
    }
    return this.#fh;
  }

  async #ensureRange(position: number, len: number): Promise<void> {
    if (this.#failed) throw this.#failed;
    const first = Math.floor(position / this.#blockSize / CHUNK_BLOCKS);
    const last = Math.floor((position + len - 1) / this.#blockSize / CHUNK_BLOCKS);
    const waits: Promise<void>[] = [];
    for (let c = first; c <= last; c++) {
      if (this.#local[c]) continue;
      // The chunks beside one a reader needed are the next it is likely to need.
      if (c + 1 < this.#chunks && !this.#local[c + 1]) this.#hot.push(c + 1);
      waits.push(this.#ensureChunks(c, c + 1));
    }
    await Promise.all(waits);
  }

  /** Makes chunks [from, to) local, sharing a fetch already under way. */
  #ensureChunks(from: number, to: number): Promise<void> {
    const pending: Promise<void>[] = [];
    let runFrom = -1;
    const flush = (end: number) => {
      if (runFrom < 0) return;
      const start = runFrom;
      const p = this.#fetchChunks(start, end);
      for (let c = start; c < end; c++) this.#inflight.set(c, p);
      const settle = () => {
        for (let c = start; c < end; c++) this.#inflight.delete(c);
      };
      p.then(settle, settle);
      pending.push(p);
      runFrom = -1;
    };
    for (let c = from; c < to; c++) {
      const busy = this.#inflight.get(c);
      if (this.#local[c] || busy) {
        flush(c);
        if (busy) pending.push(busy);
        continue;
      }
      if (runFrom < 0) runFrom = c;
    }
    flush(to);
    return Promise.all(pending).then(() => undefined);
  }

  async #fetchChunks(fromChunk: number, toChunk: number): Promise<void> {
    try {
      const from = fromChunk * CHUNK_BLOCKS;
      const to = Math.min(this.#blocks, toChunk * CHUNK_BLOCKS);
      const need = new Set<number>();
      for (let b = from; b < to; b++) need.add(b);
      if (this.#verifyLocal) await this.#keepVerified(from, to, need);
      const wanted = [...need].filter((b) => this.#stored.has(b));
      if (wanted.length > 0) {
        const first = Math.min(...wanted);
        const end = Math.max(...wanted) + 1;
        const got = await this.#withRetry(() =>
          fetchVerifiedBlocks(
            {
              ...this.#o,
              keys: this.#keys,
              info: this.#info,
              macs: this.#macs,
              blocks: this.#blocks,
            },
            first,
            end,
          ),
        );
        await writeBlocks(this.#handle(), got, this.#blockSize);
        for (const b of got.keys()) need.delete(b);
      }
      // What is left must be a zero block (no record); a stored block the gateway did not send is an error.
      const missing = [...need].find((b) => this.#stored.has(b));
      if (missing !== undefined) {
        throw new DrError(
          `the gateway sent no record for block ${missing} of ${this.#o.app}/${this.name} at point ${this.#o.point.id}`,
          {
            code: 'store_corrupt',
            subject: `${this.name} block ${missing}`,
            remedy: 'recover an older point; check the gateway store',
          },
        );
      }
      if (need.size > 0) {
        await writeZeros(this.#handle(), [...need], this.#blockSize, (b) => this.#blockLen(b));
      }
      for (let c = fromChunk; c < toChunk; c++) this.#markChunk(c);
      this.#checkWhole();
    } catch (err) {
      throw this.#fail(err);
    }
  }

  /** A block left by an earlier attempt counts only when its MAC is the point's. */
  async #keepVerified(from: number, to: number, need: Set<number>): Promise<void> {
    const fh = this.#handle();
    const buf = Buffer.alloc((to - from) * this.#blockSize);
    await fh.read(buf, 0, buf.length, from * this.#blockSize);
    for (let b = from; b < to; b++) {
      const off = (b - from) * this.#blockSize;
      const plain = buf.subarray(off, off + this.#blockLen(b));
      const want = this.#macs.subarray(b * MAC_BYTES, (b + 1) * MAC_BYTES);
      if (blockMac(this.#keys.mac, plain).equals(want)) need.delete(b);
    }
  }

  /** Retries a gateway that cannot be reached, with backoff, for `retryForMs`; other errors at once. */
  #withRetry<T>(fn: () => Promise<T>): Promise<T> {
    return withGatewayRetry(
      fn,
      this.#o.retryForMs ?? 120_000,
      () => this.#closed,
      () => this.#retries++,
    );
  }

  /** Any fetch that fails for good fails the volume: its readers get EIO from then on, never guessed bytes. */
  #fail(err: unknown): DrError {
    const e = volumeFailure(err, this.path, this.name);
    // A closed volume's fetches fail with it; that is not the volume's fault.
    if (this.#closed) return e;
    this.#failed ??= e;
    this.#whole.reject(e);
    return e;
  }

  /**
   * Copies every block not yet local, the chunks next to what readers touched first, then in
   * order, a few requests at a time. Resolves when the volume is whole; rejects when it failed.
   */
  async hydrate(): Promise<void> {
    const pick = hydrationOrder(
      this.#hot,
      this.#local,
      this.#inflight,
      this.#chunks,
      HYDRATE_RUN_CHUNKS,
    );
    const lane = async () => {
      for (;;) {
        if (this.#closed || this.#failed) return;
        const run = pick();
        if (!run) return;
        await this.#ensureChunks(run[0], run[1]);
      }
    };
    const lanes = Array.from({ length: HYDRATE_PARALLEL }, lane);
    await Promise.all(lanes).catch((err: unknown) => {
      if (!this.#closed) throw err;
    });
    // Chunks a reader is still fetching end the hydration when they land.
    if (!this.#closed) {
      await Promise.all([...this.#inflight.values()]);
      this.#checkWhole();
      await this.#whole.promise;
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#inflight.values()]);
    const fh = this.#fh;
    this.#fh = undefined;
    await fh?.close();
  }
}
