import { access, mkdir, readdir, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { syncDir } from '../../core/atomic-file.js';
import { DrError, errorMessage, systemCode } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { RECORD_HEADER_BYTES, readRecordHeader } from '../crypto/block-cipher.js';
import type { PointRecord } from '../crypto/point-record.js';
import { type DecodedBatch, decodeBatch } from '../transport/batch-codec.js';
import { Mutex, ReadWriteLock } from './async-lock.js';
import {
  type Catalog,
  mergeVolumes,
  newCatalog,
  type PointInfo,
  type PointLabel,
  readCatalog,
  type VolumeMeta,
  type VolumeProposal,
  writeCatalog,
} from './catalog.js';
import { collectGarbage, type GcResult } from './garbage-collector.js';
import { PendingBatches, withoutPlainLen } from './pending-batches.js';
import { type IndexEntry, overlayEntries, readPointIndex, writePointIndex } from './point-index.js';
import { mergeDroppedPoints, planRetention, type RetentionRules } from './retention.js';
import { FRAME_BATCH, SegmentLog } from './segment-log.js';

export interface AppStoreOptions {
  /** The app's folder: `<store>/apps/<app>`. */
  dir: string;
  name: string;
  log: Logger;
  segmentBytes: number;
  /** Segment appends with O_DIRECT where the file system allows (default). */
  directIo?: boolean | undefined;
}

export interface CommitRequest {
  /** Every pending batch up to this seq goes into the point; all of them must have arrived. */
  upToSeq: number;
  label: PointLabel;
  /** The instant of the cut; now when left out. */
  time?: Date;
  /** Each volume's size and the agent's keyed digest of it at the point. */
  volumes: Record<string, { size: number; digest: string }>;
  /**
   * The agent's signed record of this point, kept beside it for readers to check. The store
   * cannot check the signature; it checks that the record names this point's id, sequence
   * range, time, label and volumes.
   */
  signed?: { record: PointRecord; sig: string };
}

export interface AppStats {
  /** Bytes in segment files. */
  segmentBytes: number;
  segments: number;
  points: number;
  pendingBatches: number;
  committedSeq: number;
  /** Highest durable seq, pending or committed. */
  lastSeq: number;
  pendingSeqs: number[];
}

const LABELS: readonly PointLabel[] = ['fuzzy', 'crash-consistent', 'app-consistent'];

/**
 * One app's replica: segment log, catalog, point indexes and pending batches.
 *
 * Concurrency: mutations (append, commit, volumes, retention, GC) run one at
 * a time through a promise-chain mutex. Readers take a shared lock
 * (`withReadLock`, and each read method on its own); the only steps that
 * take it exclusively are the ones that delete files (segments, dropped
 * indexes), so entries obtained inside `withReadLock` stay readable until
 * it returns. Do not call a mutating method inside `withReadLock`.
 */
export class AppStore {
  readonly #mutex = new Mutex();
  readonly #files = new ReadWriteLock();
  readonly #pending = new PendingBatches();
  /** Batches written but not yet fsync'd, by sequence number. */
  readonly #inFlight = new Map<number, Promise<void>>();
  /** The materialised view of the latest point, every volume, sorted by (volume, block). */
  #latest: { pointId: number; entries: IndexEntry[] } | undefined;

  private constructor(
    private readonly options: AppStoreOptions,
    private catalog: Catalog,
    private readonly log: SegmentLog,
  ) {}

  static async create(options: AppStoreOptions): Promise<AppStore> {
    await mkdir(join(options.dir, 'points'), { recursive: true });
    await mkdir(join(options.dir, 'segments'), { recursive: true });
    await writeCatalog(join(options.dir, 'catalog.json'), newCatalog(options.name));
    await syncDir(dirname(options.dir));
    return AppStore.open(options);
  }

  /** Opens an app, cleaning up after a crash: leftover temp files, orphan indexes, a torn segment tail. */
  static async open(options: AppStoreOptions): Promise<AppStore> {
    const catalog = await readCatalog(join(options.dir, 'catalog.json'));
    const pointsDir = join(options.dir, 'points');
    await mkdir(pointsDir, { recursive: true });
    const known = new Set(catalog.points.map((p) => `${p.id}.idx`));
    for (const [dir, name] of [
      ...(await readdir(options.dir)).map((n) => [options.dir, n] as const),
      ...(await readdir(pointsDir)).map((n) => [pointsDir, n] as const),
    ]) {
      const orphanIndex = dir === pointsDir && name.endsWith('.idx') && !known.has(name);
      if (name.includes('.tmp-') || orphanIndex) {
        await unlink(join(dir, name));
        options.log.info({ file: join(dir, name) }, 'removed a file left by an interrupted write');
      }
    }
    const log = await SegmentLog.open({
      dir: join(options.dir, 'segments'),
      segmentBytes: options.segmentBytes,
      log: options.log,
      directIo: options.directIo,
    });
    const store = new AppStore(options, catalog, log);
    await log.recover(catalog.tail, (frame) => {
      if (frame.kind !== FRAME_BATCH) return undefined;
      let decoded: DecodedBatch;
      try {
        decoded = decodeBatch(frame.payload);
      } catch (err) {
        return errorMessage(err);
      }
      if (decoded.seq > catalog.committedSeq && !store.#pending.has(decoded.seq)) {
        store.#pending.add({ segment: frame.segment, offset: frame.start }, decoded);
      }
      return undefined;
    });
    return store;
  }

  get name(): string {
    return this.options.name;
  }

  get storeId(): string {
    return this.catalog.storeId;
  }

  get committedSeq(): number {
    return this.catalog.committedSeq;
  }

  volumes(): VolumeMeta[] {
    return this.catalog.volumes.map((v) => ({ ...v }));
  }

  /**
   * Registers the agent's volumes. A known volume keeps its id and wrapped
   * key (its size follows the proposal); a new one gets the next id.
   */
  async registerVolumes(proposals: readonly VolumeProposal[]): Promise<VolumeMeta[]> {
    return this.#mutex.run(async () => {
      const volumes = mergeVolumes(this.name, this.catalog.volumes, proposals);
      // Every session open proposes the volumes again; most often nothing changed, and
      // rewriting the catalog then would only fail on a full disk and refuse the agent.
      if (!sameVolumes(volumes, this.catalog.volumes))
        await this.#saveCatalog({ ...this.catalog, volumes });
      return proposals.map((p) => this.volumes().find((v) => v.name === p.name) as VolumeMeta);
    });
  }

  /**
   * Stores one batch (already checked by decodeBatch) and returns once it is
   * fsync'd. A seq already held (pending or committed) is not written again.
   */
  async appendBatch(
    seq: number,
    bytes: Buffer | readonly Buffer[],
    decoded: DecodedBatch,
  ): Promise<{ duplicate: boolean }> {
    if (!Number.isSafeInteger(seq) || seq < 1 || decoded.seq !== seq) {
      throw this.#badRequest(
        `batch seq ${seq} does not match its content (seq ${decoded.seq})`,
        String(seq),
      );
    }
    // Written under the lock, made durable outside it: batches that arrive
    // together share one fsync, and none is acknowledged before its fsync.
    // A resend of a batch still on its way to the disk waits for it.
    let durable!: () => void;
    let failed!: (err: unknown) => void;
    const settled = new Promise<void>((resolve, reject) => {
      durable = resolve;
      failed = reject;
    });
    settled.catch(() => undefined); // observed by resends only; the first caller gets the error itself
    const outcome = await this.#mutex.run(async () => {
      if (seq <= this.catalog.committedSeq || this.#pending.has(seq)) return 'duplicate' as const;
      const earlier = this.#inFlight.get(seq);
      if (earlier) return { wait: earlier };
      this.#inFlight.set(seq, settled);
      try {
        return await this.log.write(FRAME_BATCH, bytes);
      } catch (err) {
        this.#inFlight.delete(seq);
        failed(err);
        throw err;
      }
    });
    if (outcome === 'duplicate') return { duplicate: true };
    if ('wait' in outcome) {
      await outcome.wait;
      return { duplicate: true };
    }
    try {
      await this.log.sync();
      this.#pending.add(outcome, decoded);
      durable();
    } catch (err) {
      failed(err);
      throw err;
    } finally {
      this.#inFlight.delete(seq);
    }
    return { duplicate: false };
  }

  /** Makes a recovery point of every pending batch up to `upToSeq`. */
  async commitPoint({
    upToSeq,
    label,
    time = new Date(),
    volumes,
    signed,
  }: CommitRequest): Promise<PointInfo> {
    if (!Number.isSafeInteger(upToSeq) || upToSeq < 0)
      throw this.#badRequest(`upToSeq ${upToSeq} is not a seq`, 'upToSeq');
    if (!LABELS.includes(label))
      throw this.#badRequest(`unknown point label ${JSON.stringify(label)}`, 'label');
    if (Number.isNaN(time.getTime()))
      throw this.#badRequest('the point time is not a date', 'time');
    for (const [name, v] of Object.entries(volumes)) {
      this.#volume(name);
      if (!isCount(v?.size) || typeof v.digest !== 'string') {
        throw this.#badRequest(`volume ${name} needs a size and a digest`, name);
      }
    }
    return this.#mutex.run(async () => {
      const last = this.catalog.points.at(-1);
      // The agent resends a commit whose answer it lost: the point is there already.
      if (signed && last?.sig === signed.sig) return structuredClone(last);
      const from = this.catalog.committedSeq;
      if (upToSeq < from) {
        throw this.#badRequest(
          `batches up to ${upToSeq} are already in a point (committed up to ${from})`,
          'upToSeq',
        );
      }
      // A point covers only batches this store received and made durable.
      const received = Math.max(from, this.#pending.seqs().at(-1) ?? 0);
      if (upToSeq > received) {
        throw this.#badRequest(
          `a point up to batch ${upToSeq} is refused: batches were received only up to ${received}`,
          'upToSeq',
        );
      }
      if (signed) this.#checkSigned(signed.record, { upToSeq, label, time, volumes });
      // A sequence number that never became durable (the agent died mid-upload)
      // stays a gap: its blocks were never acknowledged, so the agent's next
      // scan finds them again and sends them under new numbers.
      const delta = this.#pending.deltaUpTo(upToSeq);
      const id = this.catalog.nextPointId;
      const info: PointInfo = {
        id,
        time: time.toISOString(),
        label,
        seqFrom: from + 1,
        seqTo: upToSeq,
        volumes: {},
        ...(signed ? { record: structuredClone(signed.record), sig: signed.sig } : {}),
      };
      for (const [name, v] of Object.entries(volumes)) {
        const volumeId = this.#volume(name).id;
        const mine = delta.filter((e) => e.volumeId === volumeId);
        info.volumes[name] = {
          size: v.size,
          digest: v.digest,
          blocksChanged: mine.length,
          bytesChanged: mine.reduce((n, e) => n + e.plainLen, 0),
        };
      }
      const stored = delta.map(withoutPlainLen);
      await writePointIndex(this.#indexPath(id), id, stored);
      const tail = this.#pending.firstFrameAfter(upToSeq, this.log.end());
      const previous = this.catalog.points.at(-1)?.id;
      await this.#saveCatalog({
        ...this.catalog,
        committedSeq: upToSeq,
        nextPointId: id + 1,
        tail,
        points: [...this.catalog.points, info],
      });
      this.#pending.removeUpTo(upToSeq);
      this.#latest =
        this.#latest && this.#latest.pointId === previous
          ? { pointId: id, entries: overlayEntries(this.#latest.entries, stored) }
          : undefined;
      return structuredClone(info);
    });
  }

  /** Recovery points, oldest first. */
  points(): PointInfo[] {
    return structuredClone(this.catalog.points);
  }

  point(ref: number | 'latest'): PointInfo {
    const points = this.catalog.points;
    const p = ref === 'latest' ? points.at(-1) : points.find((x) => x.id === ref);
    if (!p) {
      throw new DrError(`app ${this.name} has no recovery point ${ref}`, {
        code: 'point_unknown',
        subject: `${this.name}/${ref}`,
        remedy: `list points with \`dr points ${this.name}\``,
      });
    }
    return structuredClone(p);
  }

  /** Every block the volume holds at a point, sorted by block. Blocks never written are absent (zero). */
  async pointEntries(pointId: number, volumeName: string): Promise<IndexEntry[]> {
    const volumeId = this.#volume(volumeName).id;
    this.point(pointId);
    return this.#files.shared(async () => {
      const all =
        pointId === this.#latest?.pointId ? this.#latest.entries : await this.#materialise(pointId);
      return all.filter((e) => e.volumeId === volumeId);
    });
  }

  /** The latest point overlaid with the batches received since (highest seq wins). */
  async headEntries(volumeName: string): Promise<IndexEntry[]> {
    const volumeId = this.#volume(volumeName).id;
    return this.#files.shared(async () => {
      const latest = this.catalog.points.at(-1);
      const base = latest ? await this.pointEntries(latest.id, volumeName) : [];
      const pending = this.#pending.deltaUpTo(Number.MAX_SAFE_INTEGER, volumeId);
      return overlayEntries(base, pending.map(withoutPlainLen));
    });
  }

  /** The stored record (ciphertext, header included) an entry points at. */
  readRecord(entry: IndexEntry): Promise<Buffer> {
    return this.#files.shared(() => this.log.read(entry.segment, entry.offset, entry.length));
  }

  /** Reads a span of a segment (several neighbouring records at once). */
  readSpan(segment: number, offset: number, length: number): Promise<Buffer> {
    return this.#files.shared(() => this.log.read(segment, offset, length));
  }

  /**
   * The segment files some of `entries` live in that are not on disk (deleted or lost behind
   * the gateway's back); call inside `withReadLock` so GC cannot delete one meanwhile.
   */
  async missingSegments(entries: readonly IndexEntry[]): Promise<string[]> {
    const missing: string[] = [];
    for (const segment of new Set(entries.map((e) => e.segment))) {
      const path = this.log.path(segment);
      try {
        await access(path);
      } catch (err) {
        if (systemCode(err) !== 'ENOENT') throw err;
        missing.push(path);
      }
    }
    return missing;
  }

  /** Runs `fn` while no segment or index file can be deleted: for streaming many records. */
  withReadLock<T>(fn: () => Promise<T>): Promise<T> {
    return this.#files.shared(fn);
  }

  /**
   * Drops the points the rules no longer keep. A dropped point's entries that
   * its successor does not override move into the successor's index first,
   * so every kept point restores the same bytes, whatever step a crash hits.
   */
  applyRetention(now: Date, rules: RetentionRules): Promise<{ removed: number[] }> {
    return this.#mutex.run(async () => {
      const drop = new Set(planRetention(this.catalog.points, now, rules));
      if (drop.size === 0) return { removed: [] };
      const updated = await mergeDroppedPoints(
        {
          points: this.catalog.points,
          volumes: this.catalog.volumes,
          readDelta: (id) => readPointIndex(this.#indexPath(id), id),
          writeDelta: (id, entries) => writePointIndex(this.#indexPath(id), id, entries),
          plainLen: async (e) =>
            readRecordHeader(await this.log.read(e.segment, e.offset, RECORD_HEADER_BYTES))
              .plainLen,
        },
        drop,
      );
      await this.#files.exclusive(async () => {
        const points = this.catalog.points
          .filter((p) => !drop.has(p.id))
          .map((p) => updated.get(p.id) ?? p);
        await this.#saveCatalog({ ...this.catalog, points });
        for (const id of drop) await unlink(this.#indexPath(id));
        await syncDir(join(this.options.dir, 'points'));
      });
      return { removed: [...drop].sort((a, b) => a - b) };
    });
  }

  /** Deletes or compacts sealed segments that kept points and pending batches no longer need. */
  collectGarbage(): Promise<GcResult> {
    return this.#mutex.run(() =>
      collectGarbage({
        log: this.log,
        firstProtectedSegment: this.catalog.tail.segment,
        pointIds: this.catalog.points.map((p) => p.id),
        readDelta: (id) => readPointIndex(this.#indexPath(id), id),
        writeDelta: (id, entries) => writePointIndex(this.#indexPath(id), id, entries),
        exclusive: (fn) =>
          this.#files.exclusive(async () => {
            this.#latest = undefined; // its offsets may name compacted segments
            return fn();
          }),
      }),
    );
  }

  stats(): AppStats {
    const pendingSeqs = this.#pending.seqs();
    return {
      segmentBytes: this.log.totalBytes(),
      segments: this.log.segments().length,
      points: this.catalog.points.length,
      pendingBatches: pendingSeqs.length,
      committedSeq: this.catalog.committedSeq,
      lastSeq: Math.max(this.catalog.committedSeq, pendingSeqs.at(-1) ?? 0),
      pendingSeqs,
    };
  }

  /** Waits for running mutations, then closes the files. */
  close(): Promise<void> {
    return this.#mutex.run(() => this.#files.exclusive(() => this.log.close()));
  }

  async #materialise(pointId: number): Promise<IndexEntry[]> {
    let view: IndexEntry[] = [];
    for (const p of this.catalog.points) {
      if (p.id > pointId) break;
      view = overlayEntries(view, await readPointIndex(this.#indexPath(p.id), p.id));
    }
    if (pointId === this.catalog.points.at(-1)?.id) this.#latest = { pointId, entries: view };
    return view;
  }

  async #saveCatalog(next: Catalog): Promise<void> {
    await writeCatalog(join(this.options.dir, 'catalog.json'), next);
    this.catalog = next;
  }

  #indexPath(id: number): string {
    return join(this.options.dir, 'points', `${id}.idx`);
  }

  #volume(name: string): VolumeMeta {
    const v = this.catalog.volumes.find((x) => x.name === name);
    if (!v) {
      const known = this.catalog.volumes.map((x) => x.name).join(', ') || '(none registered)';
      throw new DrError(`app ${this.name} has no volume ${JSON.stringify(name)}`, {
        code: 'bad_request',
        subject: `${this.name}/${name}`,
        remedy: `use one of: ${known}`,
      });
    }
    return v;
  }

  /** A signed record must describe the point this commit makes; the caller holds the mutex. */
  #checkSigned(
    r: PointRecord,
    c: Pick<CommitRequest, 'upToSeq' | 'label' | 'volumes'> & { time: Date },
  ): void {
    const want = {
      app: this.name,
      id: this.catalog.nextPointId,
      seqFrom: this.catalog.committedSeq + 1,
      seqTo: c.upToSeq,
      time: c.time.toISOString(),
      label: c.label,
    };
    for (const [field, value] of Object.entries(want)) {
      const got = (r as unknown as Record<string, unknown>)[field];
      if (got !== value) {
        throw new DrError(
          `app ${this.name}: the signed record says ${field} ${JSON.stringify(got)}, the gateway's next point has ${JSON.stringify(value)}`,
          {
            code: 'point_conflict',
            subject: `${this.name}/${field}`,
            remedy: 'the agent reopens its session and signs the point again',
          },
        );
      }
    }
    const names = (o: object) => Object.keys(o).sort().join(',');
    if (names(r.volumes) !== names(c.volumes))
      throw this.#badRequest('the signed record names other volumes than the commit', 'volumes');
  }

  #badRequest(message: string, subject: string): DrError {
    return new DrError(`app ${this.name}: ${message}`, { code: 'bad_request', subject });
  }
}

function isCount(n: unknown): n is number {
  return Number.isSafeInteger(n) && (n as number) >= 0;
}

function sameVolumes(a: readonly VolumeMeta[], b: readonly VolumeMeta[]): boolean {
  return (
    a.length === b.length &&
    a.every((v, i) => {
      const w = b[i];
      return (
        w !== undefined &&
        v.name === w.name &&
        v.id === w.id &&
        v.size === w.size &&
        v.blockSize === w.blockSize &&
        v.wrappedKey.equals(w.wrappedKey)
      );
    })
  );
}
