/** One volume of a point served on demand: blocks fetched, authenticated and kept as they are read, the rest hydrated behind. */
import { constants } from 'node:fs';
import { type FileHandle, open, unlink } from 'node:fs/promises';
import { DrError } from '../../core/errors.js';
import { type VolumeKeys, volumeKeysOf } from '../crypto/volume-key.js';
import type { VolumeInfo } from '../transport/wire-types.js';
import { hydrationOrder } from './hydration-order.js';
import { fetchChunks, loadPointMacs, volumeFailure, withGatewayRetry } from './on-demand-fetch.js';
import { claimChunks, copyChunkByChunk, hydrateThroughLanes } from './on-demand-hydrate.js';
import type { HydrationState, OnDemandOptions } from './on-demand-types.js';
import { requireSignedRecord } from './point-check.js';
import { defaultParallelism } from './read-parallelism.js';
import { readFully } from './volume-file.js';

/** Blocks fetched together on a miss (read-ahead around the block a reader needs). */
const CHUNK_BLOCKS = 16;
/** Stored blocks the hydrator asks for in one request (64 MiB of 64 KiB blocks: bench/hydrate.mjs)... */
const HYDRATE_RUN_BLOCKS = 1024;
/** ...spread over at most this many chunks (holes in between are skipped, not fetched). */
const HYDRATE_RUN_CHUNKS = 1024;

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
  /** 1 where the gateway holds a record for a block; the others are zeros. */
  #stored: Uint8Array = new Uint8Array(0);
  /** Stored blocks in each chunk. */
  #storedIn: Uint16Array;
  #local: Uint8Array;
  #localChunks = 0;
  #localBlocks = 0;
  #inflight = new Map<number, Promise<void>>();
  #hot: number[] = [];
  /** Reads waiting on the gateway; the hydrator sends no request while there are any. */
  #reading = 0;
  #readsDone: Array<() => void> = [];
  #fh: FileHandle | undefined;
  #verifyLocal = false;
  #retries = 0;
  #hydratedAt: number | undefined;
  #failed: DrError | undefined;
  #closed = false;
  /** Aborted on close or failure: the hydrator's lanes stop (after their writes). */
  #stopLanes = new AbortController();
  /** The hydrator's copying (not its wait for readers' fetches): ended before the copy is closed. */
  #copying: Promise<void> | undefined;
  #hydrating: Promise<void> | undefined;
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
    this.#storedIn = new Uint16Array(this.#chunks);
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
    const { macs, stored } = await loadPointMacs(
      {
        ...this.#o,
        keys: this.#keys,
        blocks: this.#blocks,
        size: this.size,
        blockSize: this.#blockSize,
        digest,
      },
      (fn) => this.#withRetry(fn),
    );
    this.#macs = macs;
    this.#stored = stored;
    const counts = this.#storedIn;
    for (let b = 0; b < this.#blocks; b++) {
      if (stored[b])
        counts[Math.floor(b / CHUNK_BLOCKS)] = (counts[Math.floor(b / CHUNK_BLOCKS)] ?? 0) + 1;
    }
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
      for (let c = 0; c < this.#chunks; c++) if (this.#storedIn[c] === 0) this.#markChunk(c);
    }
    this.#checkWhole();
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
    const first = Math.floor(position / this.#blockSize / CHUNK_BLOCKS);
    const last = Math.floor((position + len - 1) / this.#blockSize / CHUNK_BLOCKS);
    // A chunk the hydrator gave back unfinished (the gateway went away) is fetched here next pass.
    for (let pass = 0; ; pass++) {
      if (this.#failed) throw this.#failed;
      const waits: Promise<void>[] = [];
      for (let c = first; c <= last; c++) {
        if (this.#local[c]) continue;
        // The chunks beside one a reader needed are the next it is likely to need.
        if (pass === 0 && c + 1 < this.#chunks && !this.#local[c + 1]) this.#hot.push(c + 1);
        waits.push(this.#ensureChunks([c]));
      }
      if (waits.length === 0) return;
      this.#reading++;
      try {
        await Promise.all(waits);
      } finally {
        if (--this.#reading === 0) for (const done of this.#readsDone.splice(0)) done();
      }
    }
  }

  /** Makes `chunks` local (ascending), sharing a fetch already under way; the rest in one request. */
  #ensureChunks(chunks: readonly number[]): Promise<void> {
    const pending = new Set<Promise<void>>();
    const claim: number[] = [];
    for (const c of chunks) {
      const busy = this.#inflight.get(c);
      if (busy) pending.add(busy);
      else if (!this.#local[c]) claim.push(c);
    }
    if (claim.length > 0) {
      const p = this.#fetchChunks(claim);
      for (const c of claim) this.#inflight.set(c, p);
      const settle = () => {
        for (const c of claim) this.#inflight.delete(c);
      };
      p.then(settle, settle);
      pending.add(p);
    }
    return Promise.all(pending).then(() => undefined);
  }

  /** Fetches, checks and keeps `chunks` (ascending, claimed by the caller): the stored blocks in one request. */
  async #fetchChunks(chunks: readonly number[]): Promise<void> {
    try {
      await fetchChunks(
        {
          ...this.#o,
          keys: this.#keys,
          info: this.#info,
          macs: this.#macs,
          blocks: this.#blocks,
          fh: this.#handle(),
          size: this.size,
          chunkBlocks: CHUNK_BLOCKS,
          stored: this.#stored,
          verifyLocal: this.#verifyLocal,
          retry: (fn) => this.#withRetry(fn),
        },
        chunks,
      );
      for (const c of chunks) this.#markChunk(c);
      this.#checkWhole();
    } catch (err) {
      throw this.#fail(err);
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

  /** Any fetch that fails for good fails the volume: its readers get EIO from then on (the first failure), never guessed bytes. */
  #fail(err: unknown): DrError {
    const e = volumeFailure(err, this.path, this.name);
    // A closed volume's fetches fail with it; that is not the volume's fault.
    if (this.#closed) return e;
    this.#failed ??= e;
    this.#stopLanes.abort();
    this.#whole.reject(this.#failed);
    return this.#failed;
  }

  /**
   * Copies every block not yet local, the chunks next to what readers touched first, then in
   * order: a fresh copy through the restore's lanes and worker threads (on-demand-hydrate.ts), a
   * copy an earlier attempt left chunk by chunk (each block re-checked). Starts once; resolves
   * when the volume is whole, rejects when it failed.
   */
  hydrate(): Promise<void> {
    this.#hydrating ??= this.#hydrate();
    return this.#hydrating;
  }

  async #hydrate(): Promise<void> {
    this.#copying = this.#copy();
    try {
      await this.#copying;
    } catch (err) {
      if (this.#closed) return;
      throw this.#fail(err);
    }
    // Chunks a reader is still fetching end the hydration when they land.
    if (!this.#closed) {
      await Promise.all([...this.#inflight.values()]);
      this.#checkWhole();
      await this.#whole.promise;
    }
  }

  #copy(): Promise<void> {
    const picker = () =>
      hydrationOrder({
        hot: this.#hot,
        local: this.#local,
        inflight: this.#inflight,
        chunks: this.#chunks,
        storedIn: (c) => this.#storedIn[c] ?? 0,
        runBlocks: HYDRATE_RUN_BLOCKS,
        runChunks: HYDRATE_RUN_CHUNKS,
      });
    const readsFirst = async () => {
      while (this.#reading > 0) await new Promise<void>((r) => this.#readsDone.push(r));
    };
    const stopped = () => this.#closed || this.#failed !== undefined;
    if (this.#verifyLocal) {
      const pick = picker();
      return copyChunkByChunk(pick, readsFirst, stopped, (run) => this.#ensureChunks(run));
    }
    return hydrateThroughLanes({
      ...this.#o,
      keys: this.#keys,
      job: {
        app: this.#o.app,
        volume: this.name,
        volumeId: this.#info.id,
        point: this.#o.point.id,
        blocks: this.#blocks,
        fd: this.#handle().fd,
        writeZeros: false, // a fresh copy: a zero block is a hole already
        macs: this.#macs,
        settleRanges: true,
      },
      parallel: this.#o.parallel ?? defaultParallelism(),
      chunkBlocks: CHUNK_BLOCKS,
      stored: this.#stored,
      picker,
      readsFirst,
      claim: (chunks) =>
        claimChunks(this.#inflight, chunks, () => {
          for (const c of chunks) this.#markChunk(c);
          this.#checkWhole();
        }),
      stopped,
      signal: this.#stopLanes.signal,
      retryForMs: this.#o.retryForMs ?? 120_000,
      onRetry: () => this.#retries++,
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#stopLanes.abort();
    // The lanes write into the local copy: it is closed only once they have stopped.
    await this.#copying?.catch(() => undefined);
    await Promise.allSettled([...this.#inflight.values()]);
    const fh = this.#fh;
    this.#fh = undefined;
    await fh?.close();
  }
}
