/** The append-only segment files of one app at the gateway. */
import { constants } from 'node:fs';
import {
  access,
  type FileHandle,
  mkdir,
  open,
  readdir,
  stat,
  truncate,
  unlink,
} from 'node:fs/promises';
import { join } from 'node:path';
import { syncDir } from '../../core/atomic-file.js';
import { errorMessage, systemCode } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { type Writer, writeDirect } from './direct-append.js';
import { FileHandleCache } from './file-handle-cache.js';
import { type RemoteSegments, readRemoteParts } from './remote-segments.js';
import { corruptSegment, storeFull } from './segment-errors.js';
import { type Frame, frameEnds, readFrame } from './segment-frame.js';
import { readAt, readPartsAt } from './segment-read.js';

export {
  encodeFrame,
  FRAME_BATCH,
  FRAME_COPY,
  FRAME_HEAD_BYTES,
  type Frame,
} from './segment-frame.js';

export interface LogPosition {
  segment: number;
  offset: number;
}

export interface SegmentLogOptions {
  /** The folder of `00000001.seg …` files; created when missing. */
  dir: string;
  /** The active segment is sealed and a new one started once it holds this many bytes. */
  segmentBytes: number;
  log: Logger;
  /** Append with O_DIRECT where the file system allows it (the default). */
  directIo?: boolean | undefined;
}

export function segmentFileName(segment: number): string {
  return `${String(segment).padStart(8, '0')}.seg`;
}

/**
 * The append-only segment files of one app. Appends return only once the
 * frame is fsync'd; a failed append leaves the segment as it was before.
 * Callers serialise appends, recovery and removals (the app's mutex).
 */
export class SegmentLog {
  readonly #sizes = new Map<number, number>();
  readonly #readers = new FileHandleCache();
  #writer: Writer | undefined;
  /** Page-aligned memory a frame is assembled in for a direct write; reused. */
  readonly #scratch: { aligned?: Buffer } = {};
  #directRefused = false;
  /** Set when a failed append could not be undone: the next append starts a new segment. */
  #sealActive = false;
  /** Frames written and frames known durable, for group commit. */
  #written = 0;
  #synced = 0;
  #dirDirty = false;
  #syncing: Promise<void> | undefined;
  /** Sealed segments read from elsewhere (the bucket), not from a file here. */
  #remote: RemoteSegments | undefined;
  readonly #remoteOnes = new Set<number>();

  private constructor(private readonly options: SegmentLogOptions) {}

  static async open(options: SegmentLogOptions): Promise<SegmentLog> {
    await mkdir(options.dir, { recursive: true });
    const log = new SegmentLog(options);
    for (const name of await readdir(options.dir)) {
      const m = /^(\d{8})\.seg$/.exec(name);
      if (!m) continue;
      log.#sizes.set(Number(m[1]), (await stat(join(options.dir, name))).size);
    }
    return log;
  }

  /** `remote`'s segments with no file here are sealed segments of the log, read from it. */
  attachRemote(remote: RemoteSegments): void {
    for (const s of this.#remoteOnes) this.#sizes.delete(s);
    this.#remoteOnes.clear();
    this.#remote = remote;
    for (const [segment, size] of remote.sizes) {
      if (this.#sizes.has(segment)) continue;
      this.#sizes.set(segment, size);
      this.#remoteOnes.add(segment);
    }
    const active = this.active();
    if (active !== undefined && this.#remoteOnes.has(active)) this.#sealActive = true;
  }

  path(segment: number): string {
    return join(this.options.dir, segmentFileName(segment));
  }

  /** Whether appends to the active segment bypass the page cache (O_DIRECT). */
  get directIo(): boolean {
    return this.#writer?.direct ?? false;
  }

  /** Segment numbers, oldest first. */
  segments(): number[] {
    return [...this.#sizes.keys()].sort((a, b) => a - b);
  }

  size(segment: number): number {
    return this.#sizes.get(segment) ?? 0;
  }

  totalBytes(): number {
    let n = 0;
    for (const s of this.#sizes.values()) n += s;
    return n;
  }

  /** The segment appends go to, if any exists yet. */
  active(): number | undefined {
    const all = this.segments();
    return all[all.length - 1];
  }

  /** Where the next append would land when no rotation happens. */
  end(): LogPosition {
    const active = this.active();
    return active === undefined
      ? { segment: 1, offset: 0 }
      : { segment: active, offset: this.size(active) };
  }

  /**
   * Appends one frame and fsyncs it (and the folder when a segment file was
   * created). On failure the segment is cut back to where the frame started,
   * and ENOSPC / EDQUOT become `gateway_full`.
   */
  async append(kind: number, payload: Uint8Array | readonly Uint8Array[]): Promise<LogPosition> {
    const at = await this.write(kind, payload);
    await this.sync();
    return at;
  }

  /**
   * Appends one frame without waiting for the disk; `sync()` makes it durable.
   * Callers serialise writes; syncs may overlap them (group commit).
   */
  async write(kind: number, payload: Uint8Array | readonly Uint8Array[]): Promise<LogPosition> {
    const parts = payload instanceof Uint8Array ? [payload] : payload;
    const payloadLength = parts.reduce((n, p) => n + p.length, 0);
    const [head, tail] = frameEnds(kind, parts, payloadLength);
    const frameLength = head.length + payloadLength + tail.length;
    const created = await this.#ensureWriter();
    const writer = created.writer;
    const { segment, fh } = writer;
    const start = this.size(segment);
    try {
      if (writer.direct)
        await writeDirect(
          writer,
          start,
          [head, ...parts, tail],
          (seg, o, l) => this.read(seg, o, l),
          this.#scratch,
        );
      else {
        // One writev of head, payload and tail: the payload (up to a whole batch) is not copied.
        let done = (await fh.writev([head, ...parts, tail], start)).bytesWritten;
        if (done < frameLength) {
          const frame = Buffer.concat([head, ...parts, tail]);
          while (done < frameLength) {
            const { bytesWritten } = await fh.write(frame, done, frameLength - done, start + done);
            done += bytesWritten;
          }
        }
      }
    } catch (err) {
      await this.#undo(segment, fh, start, err);
      throw storeFull(this.path(segment), this.options.dir, err);
    }
    if (created.isNew) this.#dirDirty = true;
    this.#written++;
    this.#sizes.set(segment, start + frameLength);
    return { segment, offset: start };
  }

  /**
   * Makes every frame written so far durable. Callers that arrive while an
   * fsync runs share the next one, so concurrent batches cost one fsync.
   */
  async sync(): Promise<void> {
    const want = this.#written;
    while (this.#synced < want) {
      if (this.#syncing) {
        await this.#syncing;
        continue;
      }
      const target = this.#written;
      const fh = this.#writer?.fh;
      const dir = this.#dirDirty;
      this.#dirDirty = false;
      this.#syncing = (async () => {
        await fh?.sync();
        if (dir) await syncDir(this.options.dir);
      })().finally(() => {
        this.#syncing = undefined;
      });
      await this.#syncing;
      this.#synced = target;
    }
  }

  /**
   * Reads every frame from `from` to the end of the log, oldest first, and
   * hands it to `accept`, which returns a reason when the frame is unusable.
   * A bad frame that can only be a torn write (cut short, the last frame of
   * the last segment, or zeros to the end) is cut off. Any other bad frame is
   * damage, not a crash: nothing is cut (later frames may hold records that
   * points use), the rest of that segment is skipped, and appends go to a new
   * segment. Both cases are logged as warnings.
   */
  async recover(from: LogPosition, accept: (frame: Frame) => string | undefined): Promise<void> {
    // Batches after the last point in a remote segment are not taken up (the agent resends them).
    const all = this.segments().filter((s) => s >= from.segment && !this.#remoteOnes.has(s));
    for (const segment of all) {
      const size = this.size(segment);
      let pos = segment === from.segment ? from.offset : 0;
      if (pos > size) {
        throw corruptSegment(
          this.path(segment),
          `is ${size} bytes but the catalog records data up to ${pos}`,
        );
      }
      while (pos < size) {
        const read = await readFrame((seg, o, l) => this.read(seg, o, l), segment, pos, size);
        const reason = read.problem ?? (read.frame ? accept(read.frame) : undefined);
        if (reason === undefined && read.frame) {
          pos = read.end;
          continue;
        }
        const last = segment === all[all.length - 1];
        const torn = read.end >= size || (await this.#zerosFrom(segment, pos, size));
        const fields = { segment: this.path(segment), offset: pos, bytes: size - pos, reason };
        if (last && torn) {
          await truncate(this.path(segment), pos);
          this.#sizes.set(segment, pos);
          this.options.log.warn(fields, 'cut a torn frame off the end of the segment log');
        } else {
          if (last) this.#sealActive = true;
          this.options.log.warn(
            fields,
            'damaged frame in a segment; the rest of that segment is skipped',
          );
        }
        break;
      }
    }
  }

  /**
   * Reads neighbouring bytes at `offset` of a segment straight into `parts`, filled in order (one
   * readv, so records land apart, each after room for its frame head); a short read means the
   * store lost data.
   */
  async readParts(segment: number, offset: number, parts: Buffer[]): Promise<void> {
    if (this.#remote && this.#remoteOnes.has(segment))
      return readRemoteParts(this.#remote, segment, offset, parts);
    return readPartsAt(this.#readers, this.path(segment), offset, parts);
  }

  /**
   * Reads `length` bytes at `offset` of a segment (into `into` when given, which must hold them);
   * a short read means the store lost data.
   */
  read(segment: number, offset: number, length: number, into?: Buffer): Promise<Buffer> {
    if (this.#remote && this.#remoteOnes.has(segment))
      return this.#remote.read(segment, offset, length, into);
    return readAt(this.#readers, this.path(segment), offset, length, into);
  }

  /** The files of these segments that are not on disk (deleted or lost behind the store's back). */
  async missing(segments: Iterable<number>): Promise<string[]> {
    const gone: string[] = [];
    for (const segment of segments) {
      if (this.#remoteOnes.has(segment)) continue;
      try {
        await access(this.path(segment));
      } catch (err) {
        if (systemCode(err) !== 'ENOENT') throw err;
        gone.push(this.path(segment));
      }
    }
    return gone;
  }

  /** Deletes a sealed segment file. */
  async remove(segment: number): Promise<void> {
    // A remote one's chunks go once the catalog no longer names it.
    if (this.#remoteOnes.delete(segment)) return void this.#sizes.delete(segment);
    if (segment === this.#writer?.segment) {
      await this.#writer.fh.close();
      this.#writer = undefined;
    }
    await this.#readers.drop(this.path(segment));
    await unlink(this.path(segment));
    this.#sizes.delete(segment);
    await syncDir(this.options.dir);
  }

  async close(): Promise<void> {
    await this.#writer?.fh.close();
    this.#writer = undefined;
    await this.#readers.closeAll();
  }

  async #ensureWriter(): Promise<{ writer: Writer; isNew: boolean }> {
    const active = this.active();
    const full = active !== undefined && this.size(active) >= this.options.segmentBytes;
    if (active !== undefined && !full && !this.#sealActive) {
      if (this.#writer?.segment !== active) {
        await this.#writer?.fh.sync();
        await this.#writer?.fh.close();
        this.#writer = await this.#direct({
          segment: active,
          fh: await open(this.path(active), constants.O_RDWR),
          direct: false,
        });
      }
      return { writer: this.#writer, isNew: false };
    }
    const segment = (active ?? 0) + 1;
    const flags = constants.O_RDWR | constants.O_CREAT | constants.O_EXCL;
    const fh = await open(this.path(segment), flags, 0o600).catch((err: unknown) => {
      throw storeFull(this.path(segment), this.options.dir, err);
    });
    await this.#writer?.fh.sync(); // frames awaiting a group sync must reach the disk first
    await this.#writer?.fh.close();
    this.#writer = await this.#direct({ segment, fh, direct: false });
    this.#sizes.set(segment, 0);
    this.#sealActive = false;
    return { writer: this.#writer, isNew: true };
  }

  /**
   * The same segment opened again with O_DIRECT, where the file system
   * takes it (tmpfs, for one, does not: appends then go through the page cache).
   */
  async #direct(writer: Writer): Promise<Writer> {
    if (this.options.directIo === false) return writer;
    try {
      const fh = await open(this.path(writer.segment), constants.O_RDWR | constants.O_DIRECT);
      await writer.fh.close();
      return { segment: writer.segment, fh, direct: true };
    } catch (err) {
      if (!this.#directRefused) {
        this.#directRefused = true;
        this.options.log.info(
          { dir: this.options.dir, err: systemCode(err) ?? errorMessage(err) },
          'the store file system refuses direct I/O; appends go through the page cache',
        );
      }
      return writer;
    }
  }

  async #undo(segment: number, fh: FileHandle, start: number, cause: unknown): Promise<void> {
    try {
      await fh.truncate(start);
      await fh.sync();
    } catch (err) {
      this.#sealActive = true;
      this.options.log.error(
        {
          segment: this.path(segment),
          offset: start,
          err: errorMessage(err),
          cause: errorMessage(cause),
        },
        'could not cut a failed append off the segment; later appends go to a new segment',
      );
    }
  }

  /** True when a segment holds only zero bytes from `pos` on (a file extended by a crash, never written). */
  async #zerosFrom(segment: number, pos: number, size: number): Promise<boolean> {
    for (let o = pos; o < size; o += 1024 * 1024) {
      const chunk = await this.read(segment, o, Math.min(1024 * 1024, size - o));
      if (chunk.some((b) => b !== 0)) return false;
    }
    return true;
  }
}
