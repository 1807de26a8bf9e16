/** One app's replica at the gateway: its segment log, catalog, point indexes and pending batches. */
import { mkdir, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { syncDir } from '../../core/atomic-file.js';
import { RECORD_HEADER_BYTES, readRecordHeader } from '../crypto/block-cipher.js';
import type { DecodedBatch } from '../transport/batch-codec.js';
import type { AppStats, AppStoreOptions, CommitRequest } from './app-store-types.js';
import { Mutex, ReadWriteLock } from './async-lock.js';
import {
  type FindRecord,
  ReferencesInFlight,
  type Resolution,
  recordFinder,
  recoverPending,
} from './block-references.js';
import {
  type Catalog,
  findPoint,
  mergeVolumes,
  newCatalog,
  type PointInfo,
  readCatalog,
  sameVolumes,
  type VolumeMeta,
  type VolumeProposal,
  writeCatalog,
} from './catalog.js';
import {
  checkCommit,
  checkCommitRange,
  checkSignedRecord,
  pointInfoOf,
  storeBadRequest,
  volumeNamed,
} from './commit-checks.js';
import { collectGarbage, type GcResult } from './garbage-collector.js';
import type { ReplicaFiles } from './gateway-store.js';
import { GroupCommit } from './group-commit.js';
import { removeInterruptedWrites } from './interrupted-writes.js';
import { PendingBatches, withoutPlainLen } from './pending-batches.js';
import { type IndexEntry, overlayEntries, readPointIndex, writePointIndex } from './point-index.js';
import { PointView } from './point-view.js';
import type { RemoteSegments } from './remote-segments.js';
import { mergeDroppedPoints, planRetention, type RetentionRules } from './retention.js';
import { FRAME_BATCH, SegmentLog } from './segment-log.js';
import { copyWhenSettled } from './settled-copy.js';

export type { AppStats, AppStoreOptions, CommitRequest } from './app-store-types.js';

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
  readonly #group = new GroupCommit(this.#mutex);
  readonly #view = new PointView((id) => this.#indexPath(id));
  readonly #references = new ReferencesInFlight();

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
    await removeInterruptedWrites(options.dir, catalog, options.log);
    const log = await SegmentLog.open({
      dir: join(options.dir, 'segments'),
      segmentBytes: options.segmentBytes,
      log: options.log,
      directIo: options.directIo,
    });
    const store = new AppStore(options, catalog, log);
    await recoverPending(log, catalog, {
      finder: () => store.#finder(),
      adopt: (at, decoded, resolutions) => store.#pending.add(at, decoded, resolutions),
      log: options.log,
    });
    return store;
  }

  /** Finds a stored record by block and MAC: pending batches first, then the latest point. */
  async #finder(): Promise<FindRecord> {
    const latest = this.catalog.points.at(-1);
    const view =
      latest && (await this.#files.shared(() => this.#view.at(this.catalog.points, latest.id)));
    return recordFinder(this.#pending, view || []);
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
      throw storeBadRequest(
        this.name,
        `batch seq ${seq} does not match its content (seq ${decoded.seq})`,
        String(seq),
      );
    }
    // References are resolved under the mutex, before the write: one the store cannot resolve
    // refuses the batch with nothing stored, and the agent sends the data instead.
    let resolutions: Resolution[] | undefined;
    try {
      return await this.#group.append(seq, {
        held: () => seq <= this.catalog.committedSeq || this.#pending.has(seq),
        write: async () => {
          resolutions = await this.#references.resolve(this.name, decoded, () => this.#finder());
          return this.log.write(FRAME_BATCH, bytes);
        },
        sync: () => this.log.sync(),
        adopt: (at) => this.#pending.add(at, decoded, resolutions),
      });
    } finally {
      this.#references.release(resolutions);
    }
  }

  /** Makes a recovery point of every pending batch up to `upToSeq`. */
  async commitPoint({
    upToSeq,
    label,
    time = new Date(),
    volumes,
    signed,
  }: CommitRequest): Promise<PointInfo> {
    checkCommit(this.name, { upToSeq, label, time, volumes }, (name) => this.#volume(name));
    return this.#mutex.run(async () => {
      const last = this.catalog.points.at(-1);
      // The agent resends a commit whose answer it lost: the point is there already.
      if (signed && last?.sig === signed.sig) return structuredClone(last);
      const from = this.catalog.committedSeq;
      // A point covers only batches this store received and made durable.
      const received = Math.max(from, this.#pending.seqs().at(-1) ?? 0);
      checkCommitRange(this.name, upToSeq, { from, received });
      if (signed)
        checkSignedRecord(this.name, this.catalog, signed.record, {
          upToSeq,
          label,
          time,
          volumes,
        });
      // A sequence number that never became durable (the agent died mid-upload)
      // stays a gap: its blocks were never acknowledged, so the agent's next
      // scan finds them again and sends them under new numbers.
      const delta = this.#pending.deltaUpTo(upToSeq);
      const id = this.catalog.nextPointId;
      const info = pointInfoOf(
        { id, seqFrom: from + 1, upToSeq, label, time, volumes, signed },
        delta,
        (name) => this.#volume(name).id,
      );
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
      this.#view.committed(previous, id, stored);
      return structuredClone(info);
    });
  }

  /** Recovery points, oldest first. */
  points(): PointInfo[] {
    return structuredClone(this.catalog.points);
  }

  point(ref: number | 'latest'): PointInfo {
    return structuredClone(findPoint(this.name, this.catalog.points, ref));
  }

  /** Every block the volume holds at a point, sorted by block. Blocks never written are absent (zero). */
  async pointEntries(pointId: number, volumeName: string): Promise<IndexEntry[]> {
    const volumeId = this.#volume(volumeName).id;
    this.point(pointId);
    return this.#files.shared(async () => {
      const all = await this.#view.at(this.catalog.points, pointId);
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

  /** Reads a span of a segment (several neighbouring records at once), into `into` when given. */
  readSpan(segment: number, offset: number, length: number, into?: Buffer): Promise<Buffer> {
    return this.#files.shared(() => this.log.read(segment, offset, length, into));
  }

  /** Reads a span of a segment straight into `parts`, in order (records apart, see SegmentLog.readParts). */
  readSpanParts(segment: number, offset: number, parts: Buffer[]): Promise<void> {
    return this.#files.shared(() => this.log.readParts(segment, offset, parts));
  }

  /**
   * The segment files some of `entries` live in that are not on disk (deleted or lost behind
   * the gateway's back); call inside `withReadLock` so GC cannot delete one meanwhile.
   */
  missingSegments(entries: readonly IndexEntry[]): Promise<string[]> {
    return this.log.missing(new Set(entries.map((e) => e.segment)));
  }

  /** Reads the sealed segments with no file here from `remote` (the bucket's copy) from now on. */
  attachRemote(remote: RemoteSegments): Promise<void> {
    return this.#mutex.run(() => this.#files.exclusive(async () => this.log.attachRemote(remote)));
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
        references: () => [...this.#pending.references(), ...this.#references.places()],
        exclusive: (fn) =>
          this.#files.exclusive(async () => {
            this.#view.forget(); // its offsets may name compacted segments
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

  /**
   * Copies the files elsewhere without holding up batches: `settle` between mutations, `copy`
   * while batches flow again (settled-copy.ts).
   */
  withSettledFiles<P, T>(
    settle: (files: ReplicaFiles) => Promise<P>,
    copy: (settled: P) => Promise<T>,
  ): Promise<T> {
    return copyWhenSettled(
      {
        mutex: this.#mutex,
        files: this.#files,
        settled: async () => {
          await this.log.sync();
          const segments = this.log.segments().map((segment) => ({
            segment,
            size: this.log.size(segment),
            path: this.log.path(segment),
          }));
          const pointIds = this.catalog.points.map((p) => p.id);
          return { dir: this.options.dir, segments, pointIds };
        },
      },
      settle,
      copy,
    );
  }

  /** Waits for running mutations, then closes the files. */
  close(): Promise<void> {
    return this.#mutex.run(() => this.#files.exclusive(() => this.log.close()));
  }

  async #saveCatalog(next: Catalog): Promise<void> {
    await writeCatalog(join(this.options.dir, 'catalog.json'), next);
    this.catalog = next;
  }

  #indexPath(id: number): string {
    return join(this.options.dir, 'points', `${id}.idx`);
  }

  #volume(name: string): VolumeMeta {
    return volumeNamed(this.name, this.catalog.volumes, name);
  }
}
