/**
 * One app's replica copied into a bucket, and fetched back from it: segment bytes as bounded
 * chunk objects, point indexes and the catalog as objects. Written in the order that keeps every
 * point the bucket's catalog names readable: segment bytes, then indexes, then the catalog, and
 * only then deletions of what the catalog no longer names.
 *
 * Layout under the store's prefix (ids only, no plaintext; the bytes are the ciphertext the
 * gateway holds on disk):
 *   apps/<app>/catalog.json
 *   apps/<app>/points/<id>[.<fencing token>].idx
 *   apps/<app>/segments/<segment, 8 digits>/<offset, 12 digits>[.<fencing token>]
 * The catalog in the bucket is the local one plus `chunks`: which token's chunks make up each
 * segment (chunk-chains.ts), so chunks a stale gateway wrote are never read; the indexes it names
 * are its writer's token's (each holder uploads every index at its first sync).
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DrError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { isName } from '../../core/names.js';
import type { AppStore } from './app-store.js';
import { Mutex } from './async-lock.js';
import {
  type Chunk,
  type ChunkChains,
  chainsIn,
  chunksOf,
  followChains,
  indexesOf,
  indexKey,
  type Runs,
  readChain,
  segmentName,
  withChains,
} from './chunk-chains.js';
import type { ReplicaFiles } from './gateway-store.js';
import type { ObjectBucket } from './object-bucket.js';
import type { RemoteSegments } from './remote-segments.js';
import { uploadSegmentBytes } from './segment-upload.js';

/**
 * No chunk object is larger: a segment's bytes go up in pieces of at most this size, one PUT each
 * (the bucket's part size), CHUNKS_AT_ONCE at once (bench:object-put: 16 MiB objects four at once
 * were the fastest into Ceph RGW here).
 */
export const CHUNK_BYTES = 16 * 1024 * 1024;
const CHUNKS_AT_ONCE = 4;

/** The apps whose catalog is in the bucket. */
export async function appsInBucket(bucket: ObjectBucket): Promise<string[]> {
  const apps = new Set<string>();
  for (const { key } of await bucket.list('apps/')) {
    const m = /^apps\/([^/]+)\/catalog\.json$/.exec(key);
    if (m && isName('app', m[1] as string)) apps.add(m[1] as string);
  }
  return [...apps].sort();
}

/** An app's state as a sync uploads it: settled sizes, the catalog and indexes read at that instant. */
interface Settled {
  files: ReplicaFiles;
  indexes: { id: number; version: string; body: Buffer }[];
  catalog: Buffer;
}

/** What one sync sent, and how long each step took (the catalog step is the point's last). */
export interface SyncReport {
  bytes: number;
  segmentBytes: number;
  segmentMs: number;
  indexes: number;
  indexBytes: number;
  indexMs: number;
  catalogMs: number;
}

export interface MirrorOptions {
  /**
   * The ETag of the bucket's catalog this copy descends from (read when absent). Every catalog
   * write is conditional on it, so a gateway that lost the app to another can never commit.
   */
  catalogEtag?: string | undefined;
  /** The bytes of that catalog (with `catalogEtag`): the chunk chains it names. */
  catalog?: Buffer | undefined;
  /**
   * The fencing token of this gateway's lease on the app, carried in the key of every chunk it
   * uploads (0, the default: one gateway, no lease).
   */
  token?: number;
  /** Called before each write to the bucket; throws when this gateway may no longer write the app. */
  guard?: () => Promise<void>;
}

/** Why a catalog write was refused: another gateway wrote the app's catalog meanwhile. */
function fenced(bucket: ObjectBucket, app: string): DrError {
  return new DrError(
    `object store ${bucket.url}: another gateway wrote app ${app}'s catalog; this gateway no longer serves ${app} and did not commit`,
    {
      code: 'lease_lost',
      subject: app,
      remedy: 'the agent opens a new session with the gateway that serves the app now',
    },
  );
}

/** Keeps one app's copy in the bucket up to date with its files. */
export class BucketMirror {
  /** The catalog's ETag as this mirror last wrote (or read) it; undefined: there is none. */
  #catalogEtag: string | undefined;
  /** A catalog write whose answer never came: if it landed, the bucket holds these bytes. */
  #unsure: Buffer | undefined;
  #guard: () => Promise<void> = async () => undefined;

  /** Bytes of each segment in the bucket, from offset 0. */
  readonly #segmentEnds = new Map<number, number>();
  /** Which token's chunks make up each segment in the bucket (what the catalog names). */
  readonly #runs = new Map<number, Runs>();
  /** Each segment's chunks on its chain, as last listed (what remote reads follow). */
  #on = new Map<number, Chunk[]>();
  #token = 0;
  /** Whether this mirror has written the catalog (naming its own token's indexes). */
  #wroteCatalog = false;
  /** Index files in the bucket, by point id, with the size and mtime they were uploaded at. */
  readonly #indexes = new Map<number, string>();
  readonly #syncing = new Mutex();

  private constructor(
    private readonly bucket: ObjectBucket,
    private readonly app: string,
    private readonly log: Logger,
  ) {}

  /**
   * Learns what the bucket holds of the app already, and clears what an upload cut short left
   * there (multipart uploads never completed, chunks off a segment's chain) once the guard says
   * this gateway serves the app.
   */
  static async open(
    bucket: ObjectBucket,
    app: string,
    log: Logger,
    options: MirrorOptions = {},
  ): Promise<BucketMirror> {
    const mirror = new BucketMirror(bucket, app, log);
    const key = `apps/${app}/catalog.json`;
    // The version the caller read (its bytes name the chains), else the bucket's now.
    const tagged =
      'catalogEtag' in options && (options.catalogEtag === undefined || options.catalog)
        ? options.catalogEtag === undefined
          ? undefined
          : { etag: options.catalogEtag, body: options.catalog }
        : await bucket.getTagged(key);
    mirror.#catalogEtag = tagged?.etag;
    mirror.#token = options.token ?? 0;
    if (options.guard) mirror.#guard = options.guard;
    const chains: ChunkChains = tagged?.body
      ? chainsIn(tagged.body, `${bucket.url}/${key}`)
      : { fence: mirror.#token, runs: new Map() };
    await mirror.#clearStrays(
      chains,
      'deleted chunks an interrupted upload left in the bucket, or a gateway that lost the app',
    );
    await mirror.abortLeftovers();
    return mirror;
  }

  /**
   * Takes each segment's chain as `chains` names it, and deletes the chunks off it: an upload
   * that failed or was cut short, or a gateway that stalled past its lease wrote them.
   */
  async #clearStrays(chains: ChunkChains, done: string): Promise<number> {
    const { ends, runs, on, off } = followChains(await chunksOf(this.bucket, this.app), chains);
    this.#on = on;
    this.#segmentEnds.clear();
    this.#runs.clear();
    for (const [segment, end] of ends) this.#segmentEnds.set(segment, end);
    for (const [segment, r] of runs) this.#runs.set(segment, r);
    if (off.length > 0) {
      await this.#guard();
      await this.bucket.delete(off.map((c) => c.key));
      this.log.info({ chunks: off.length }, done);
    }
    return off.length;
  }

  /**
   * The segments in the bucket as the log's remote segments: a holder reads those it has no file
   * of with range GETs rather than copying them first (a takeover serves at once).
   */
  remote(): RemoteSegments {
    return {
      sizes: new Map(this.#segmentEnds),
      read: async (segment, offset, length, into) => {
        const chain = this.#on.get(segment) ?? [];
        const span = await readChain(this.bucket, chain, offset, length, into);
        if (span) return span;
        const what = `apps/${this.app}/segments/${segmentName(segment)} bytes ${offset}-${offset + length}`;
        throw new DrError(`object store ${this.bucket.url}: ${what} is not in the bucket`, {
          code: 'store_corrupt',
          subject: what,
          remedy: 'the bucket lost objects the catalog names; restore them from its versioning',
        });
      },
    };
  }

  /**
   * Deletes the chunks no chain names (those a stale gateway wrote after this one took the app
   * over); part of every collection. Answers how many.
   */
  deleteStrays(): Promise<number> {
    return this.#syncing.run(async () => {
      const chunks = await this.#clearStrays(
        { fence: this.#token, runs: new Map(this.#runs) },
        'deleted chunks no chain names (an interrupted upload, or a gateway that lost the app)',
      );
      // Indexes of another token: the last holder's, or a stale one's. Only once this mirror's
      // catalog (naming its own) is in the bucket, so no reader is sent to a deleted one.
      if (!this.#wroteCatalog) return chunks;
      const stale = (await indexesOf(this.bucket, this.app)).filter((i) => i.token !== this.#token);
      if (stale.length > 0) {
        await this.#guard();
        await this.bucket.delete(stale.map((i) => i.key));
        this.log.info({ indexes: stale.length }, 'deleted indexes of another fencing token');
      }
      return chunks + stale.length;
    });
  }

  /** Aborts the app's multipart uploads in the bucket that no upload of this process runs. */
  async abortLeftovers(): Promise<number> {
    await this.#guard();
    const aborted = await this.bucket.abortLeftovers(`apps/${this.app}/`);
    if (aborted > 0)
      this.log.info({ uploads: aborted }, 'aborted multipart uploads an interrupted upload left');
    return aborted;
  }

  /**
   * Brings the bucket to the app's state, one sync at a time. The app stands still only while
   * this reads its catalog and changed indexes; segment bytes go up while batches flow again.
   */
  sync(app: Pick<AppStore, 'withSettledFiles'>): Promise<SyncReport> {
    return this.#syncing.run(() =>
      app.withSettledFiles(
        (files) => this.#settle(files),
        (settled) => this.#upload(settled),
      ),
    );
  }

  /** Segment bytes up to the settled sizes that the bucket lacks, as chunk objects. */
  async #uploadSegments(files: ReplicaFiles): Promise<number> {
    await this.#guard();
    const before = new Map(this.#segmentEnds);
    try {
      return await uploadSegmentBytes(files, this.#segmentEnds, {
        bucket: this.bucket,
        app: this.app,
        chunkBytes: CHUNK_BYTES,
        atOnce: CHUNKS_AT_ONCE,
        token: this.#token,
        guard: this.#guard,
      });
    } finally {
      // Bytes this gateway added to a segment are its token's chunks from the old end on.
      for (const [segment, end] of this.#segmentEnds) {
        const from = before.get(segment) ?? 0;
        if (end === from) continue;
        const runs = this.#runs.get(segment) ?? [];
        if (runs.at(-1)?.[1] !== this.#token) runs.push([from, this.#token]);
        this.#runs.set(segment, runs);
      }
    }
  }

  /**
   * Uploads the segment bytes fsync'd so far (no index, no catalog: no reader sees anything new),
   * so a later commit's sync has only the rest to send.
   */
  pushSegments(app: Pick<AppStore, 'withSettledFiles'>): Promise<number> {
    return this.#syncing.run(() =>
      app.withSettledFiles(
        async (files) => files,
        (files) => this.#uploadSegments(files),
      ),
    );
  }

  /** What a mutation may rewrite, read while the app stands still: the catalog and new or rewritten indexes. */
  async #settle(files: ReplicaFiles): Promise<Settled> {
    const indexes: Settled['indexes'] = [];
    // Retention merges and compaction rewrite indexes: size and mtime tell a new version.
    for (const id of files.pointIds) {
      const path = join(files.dir, 'points', `${id}.idx`);
      const s = await stat(path);
      const version = `${s.size}:${s.mtimeMs}`;
      if (this.#indexes.get(id) !== version)
        indexes.push({ id, version, body: await readFile(path) });
    }
    return { files, indexes, catalog: await readFile(join(files.dir, 'catalog.json')) };
  }

  async #upload({ files, indexes, catalog }: Settled): Promise<SyncReport> {
    const t0 = performance.now();
    // 1. Segment bytes not in the bucket yet, in order.
    const segmentBytes = await this.#uploadSegments(files);
    const t1 = performance.now();
    // 2. Point indexes new or rewritten.
    let indexBytes = 0;
    for (const { id, version, body } of indexes) {
      await this.bucket.put(indexKey(this.app, id, this.#token), body);
      indexBytes += body.length;
      this.#indexes.set(id, version);
    }
    const t2 = performance.now();
    // 3. The catalog last: from here on a reader of the bucket sees the new points.
    await this.#putCatalog(withChains(catalog, { fence: this.#token, runs: this.#runs }));
    const t3 = performance.now();
    const bytes = segmentBytes + indexBytes + catalog.length;
    // 4. What the catalog no longer names: dropped points' indexes, collected segments.
    const kept = new Set(files.pointIds);
    const dropIndexes = [...this.#indexes.keys()].filter((id) => !kept.has(id));
    const local = new Set(files.segments.map((s) => s.segment));
    const dropSegments = [...this.#segmentEnds.keys()].filter((s) => !local.has(s));
    if (dropIndexes.length > 0 || dropSegments.length > 0) {
      const keys = dropIndexes.map((id) => indexKey(this.app, id, this.#token));
      if (dropSegments.length > 0) {
        const gone = new Set(dropSegments);
        for (const c of await chunksOf(this.bucket, this.app))
          if (gone.has(c.segment)) keys.push(c.key);
      }
      await this.bucket.delete(keys);
      for (const id of dropIndexes) this.#indexes.delete(id);
      for (const s of dropSegments) {
        this.#segmentEnds.delete(s);
        this.#runs.delete(s);
      }
      this.log.debug({ objects: keys.length }, 'deleted objects the catalog no longer names');
    }
    return {
      bytes,
      segmentBytes,
      segmentMs: Math.round(t1 - t0),
      indexes: indexes.length,
      indexBytes,
      indexMs: Math.round(t2 - t1),
      catalogMs: Math.round(t3 - t2),
    };
  }

  /** The catalog, written only over the version this copy descends from (a compare-and-swap). */
  async #putCatalog(catalog: Buffer): Promise<void> {
    const key = `apps/${this.app}/catalog.json`;
    await this.#guard();
    const unsure = this.#unsure;
    this.#unsure = catalog;
    let etag = await this.bucket.putIf(key, catalog, this.#catalogEtag);
    if (etag === 'conflict') {
      // A write of ours whose answer was lost may have landed: then the bucket holds our bytes.
      const now = await this.bucket.getTagged(key);
      const ours = now && (unsure?.equals(now.body) || catalog.equals(now.body));
      if (!now || !ours) throw fenced(this.bucket, this.app);
      etag = await this.bucket.putIf(key, catalog, now.etag);
      if (etag === 'conflict') throw fenced(this.bucket, this.app);
    }
    this.#catalogEtag = etag;
    this.#unsure = undefined;
    this.#wroteCatalog = true;
  }
}
