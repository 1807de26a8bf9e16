/**
 * One app's replica copied into a bucket, and fetched back from it: segment bytes as bounded
 * chunk objects, point indexes and the catalog as objects. Written in the order that keeps every
 * point the bucket's catalog names readable: segment bytes, then indexes, then the catalog, and
 * only then deletions of what the catalog no longer names.
 *
 * Layout under the store's prefix (ids only, no plaintext; the bytes are the ciphertext the
 * gateway holds on disk):
 *   apps/<app>/catalog.json
 *   apps/<app>/points/<id>.idx
 *   apps/<app>/segments/<segment, 8 digits>/<offset, 12 digits>
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { syncDir } from '../../core/atomic-file.js';
import { DrError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { isName } from '../../core/names.js';
import type { AppStore } from './app-store.js';
import { Mutex } from './async-lock.js';
import { readCatalog, writeCatalog } from './catalog.js';
import type { ReplicaFiles } from './gateway-store.js';
import type { ObjectBucket } from './object-bucket.js';
import { chainOf, chunksOf, segmentName, uploadSegmentBytes } from './segment-upload.js';

/**
 * No chunk object is larger: a segment's bytes go up in pieces of at most this size, one PUT each
 * (the bucket's part size), CHUNKS_AT_ONCE at once (bench:object-put: 16 MiB objects four at once
 * were the fastest into Ceph RGW here).
 */
export const CHUNK_BYTES = 16 * 1024 * 1024;
const CHUNKS_AT_ONCE = 4;

export { type Chunk, chunksOf, segmentName } from './segment-upload.js';

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
    mirror.#catalogEtag =
      'catalogEtag' in options
        ? options.catalogEtag
        : (await bucket.getTagged(`apps/${app}/catalog.json`))?.etag;
    if (options.guard) mirror.#guard = options.guard;
    const { ends, orphans } = chainOf(await chunksOf(bucket, app));
    for (const [segment, end] of ends) mirror.#segmentEnds.set(segment, end);
    if (orphans.length > 0) {
      await mirror.#guard();
      await bucket.delete(orphans.map((c) => c.key));
      log.info(
        { chunks: orphans.length },
        'deleted chunks an interrupted upload left in the bucket',
      );
    }
    await mirror.abortLeftovers();
    return mirror;
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
    return uploadSegmentBytes(files, this.#segmentEnds, {
      bucket: this.bucket,
      app: this.app,
      chunkBytes: CHUNK_BYTES,
      atOnce: CHUNKS_AT_ONCE,
    });
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
    const prefix = `apps/${this.app}`;
    const t0 = performance.now();
    // 1. Segment bytes not in the bucket yet, in order.
    const segmentBytes = await this.#uploadSegments(files);
    const t1 = performance.now();
    // 2. Point indexes new or rewritten.
    let indexBytes = 0;
    for (const { id, version, body } of indexes) {
      await this.bucket.put(`${prefix}/points/${id}.idx`, body);
      indexBytes += body.length;
      this.#indexes.set(id, version);
    }
    const t2 = performance.now();
    // 3. The catalog last: from here on a reader of the bucket sees the new points.
    await this.#putCatalog(catalog);
    const t3 = performance.now();
    const bytes = segmentBytes + indexBytes + catalog.length;
    // 4. What the catalog no longer names: dropped points' indexes, collected segments.
    const kept = new Set(files.pointIds);
    const dropIndexes = [...this.#indexes.keys()].filter((id) => !kept.has(id));
    const local = new Set(files.segments.map((s) => s.segment));
    const dropSegments = [...this.#segmentEnds.keys()].filter((s) => !local.has(s));
    if (dropIndexes.length > 0 || dropSegments.length > 0) {
      const keys = dropIndexes.map((id) => `${prefix}/points/${id}.idx`);
      if (dropSegments.length > 0) {
        const gone = new Set(dropSegments);
        for (const c of await chunksOf(this.bucket, this.app))
          if (gone.has(c.segment)) keys.push(c.key);
      }
      await this.bucket.delete(keys);
      for (const id of dropIndexes) this.#indexes.delete(id);
      for (const s of dropSegments) this.#segmentEnds.delete(s);
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
  }
}

/**
 * Fetches an app from the bucket into `appDir` (which must not exist): its catalog, the indexes
 * of the points it names and the segments, into a temporary folder renamed into place at the end,
 * so a crash midway leaves no half app.
 */
export async function fetchApp(
  bucket: ObjectBucket,
  app: string,
  appDir: string,
  log: Logger,
): Promise<{ bytes: number; catalogEtag: string }> {
  const prefix = `apps/${app}`;
  const temp = `${appDir}.fetching`;
  await rm(temp, { recursive: true, force: true });
  await mkdir(join(temp, 'points'), { recursive: true });
  await mkdir(join(temp, 'segments'), { recursive: true });
  const tagged = await bucket.getTagged(`${prefix}/catalog.json`);
  if (!tagged) {
    throw new DrError(`object store ${bucket.url}: app ${app} has no catalog`, {
      code: 'store_corrupt',
      subject: `${bucket.url}/${prefix}/catalog.json`,
      remedy: 'check that gateway.store names the bucket and prefix the gateway wrote',
    });
  }
  const catalogBytes = tagged.body;
  await writeFile(join(temp, 'catalog.json'), catalogBytes);
  const fetched = await readCatalog(join(temp, 'catalog.json'));
  // The batches this machine's lost log held after the last point are not in the bucket. A new
  // storeId tells every agent so: it stops trusting what it believes delivered, reads the MACs
  // this store holds and sends what differs (the un-uploaded tail), its points kept as they are.
  const catalog = { ...fetched, storeId: randomBytes(16).toString('hex') };
  await writeCatalog(join(temp, 'catalog.json'), catalog);
  let bytes = catalogBytes.length;
  for (const p of catalog.points) {
    const body = await bucket.get(`${prefix}/points/${p.id}.idx`);
    if (!body) {
      throw new DrError(`object store ${bucket.url}: point ${p.id} of ${app} has no index`, {
        code: 'store_corrupt',
        subject: `${bucket.url}/${prefix}/points/${p.id}.idx`,
        remedy:
          'the bucket lost an object the catalog names; restore it from the bucket versioning',
      });
    }
    await writeFile(join(temp, 'points', `${p.id}.idx`), body);
    bytes += body.length;
  }
  let current: { segment: number; end: number; fh: Awaited<ReturnType<typeof open>> } | undefined;
  try {
    for (const c of await chunksOf(bucket, app)) {
      if (current?.segment !== c.segment) {
        await current?.fh.sync();
        await current?.fh.close();
        current = {
          segment: c.segment,
          end: 0,
          fh: await open(join(temp, 'segments', `${segmentName(c.segment)}.seg`), 'w'),
        };
      }
      if (c.offset !== current.end) continue; // a chunk past a gap: not part of the log
      const body = await bucket.get(c.key);
      if (!body) continue;
      await current.fh.write(body, 0, body.length, current.end);
      current.end += body.length;
      bytes += body.length;
    }
    await current?.fh.sync();
  } finally {
    await current?.fh.close();
  }
  await syncDir(join(temp, 'points'));
  await syncDir(join(temp, 'segments'));
  await rename(temp, appDir);
  log.info({ app, bytes, points: catalog.points.length }, 'fetched the app from the object store');
  return { bytes, catalogEtag: tagged.etag };
}
