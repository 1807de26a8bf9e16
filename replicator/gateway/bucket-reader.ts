/**
 * An app's committed points read straight from the bucket, for a gateway that does not hold the
 * app's lease: restore, verify and recovery through any gateway, with range GETs of the segment
 * chunks, without taking the app over. Only what the bucket's catalog names is served.
 */
import { DrError } from '../../core/errors.js';
import type { AppStore } from './app-store.js';
import { type Catalog, findPoint, parseCatalog } from './catalog.js';
import {
  type Chunk,
  chainsIn,
  chunksOf,
  followChains,
  indexKey,
  readChain,
  segmentName,
} from './chunk-chains.js';
import type { ReadableReplica } from './gateway-store.js';
import type { ObjectBucket } from './object-bucket.js';
import { decodePointIndex, type IndexEntry, overlayEntries } from './point-index.js';

/** Whether a local copy is the bucket's catalog or its continuation (same store, not behind). */
export function descendsFrom(
  local: Pick<AppStore, 'storeId' | 'committedSeq'>,
  bucketCatalog: Buffer,
): boolean {
  const c = parseCatalog(bucketCatalog.toString('utf8'), 'catalog.json in the bucket');
  return c.storeId === local.storeId && c.committedSeq <= local.committedSeq;
}

/** One app as the bucket holds it at one moment (its catalog and its chunk listing). */
export class BucketApp implements ReadableReplica {
  private constructor(
    private readonly bucket: ObjectBucket,
    private readonly catalog: Catalog,
    /** The token of the gateway that wrote the catalog: its indexes are the ones it names. */
    private readonly fence: number,
    /** Chunks by segment, in offset order. */
    private readonly chunks: Map<number, Chunk[]>,
  ) {}

  /** The app as the bucket holds it now, or undefined when the bucket has no such app. */
  static async load(bucket: ObjectBucket, app: string): Promise<BucketApp | undefined> {
    const key = `apps/${app}/catalog.json`;
    const body = await bucket.get(key);
    if (!body) return undefined;
    const catalog = parseCatalog(body.toString('utf8'), `${bucket.url}/${key}`);
    // Only each segment's chain as the catalog names it: a chunk an interrupted upload, or a
    // gateway that lost the app, left is not read.
    const chains = chainsIn(body, `${bucket.url}/${key}`);
    const { on: chunks } = followChains(await chunksOf(bucket, app), chains);
    return new BucketApp(bucket, catalog, chains.fence, chunks);
  }

  get name(): string {
    return this.catalog.app;
  }

  points(): ReturnType<ReadableReplica['points']> {
    return structuredClone(this.catalog.points);
  }

  point(ref: number | 'latest'): ReturnType<ReadableReplica['point']> {
    return structuredClone(findPoint(this.name, this.catalog.points, ref));
  }

  volumes(): ReturnType<ReadableReplica['volumes']> {
    return this.catalog.volumes;
  }

  async pointEntries(pointId: number, volumeName: string): Promise<IndexEntry[]> {
    const volume = this.catalog.volumes.find((v) => v.name === volumeName);
    if (!volume)
      throw new DrError(`app ${this.name} has no volume ${volumeName}`, { code: 'bad_request' });
    this.point(pointId);
    let view: IndexEntry[] = [];
    for (const p of this.catalog.points) {
      if (p.id > pointId) break;
      const key = indexKey(this.name, p.id, this.fence);
      const body = await this.bucket.get(key);
      if (!body) throw this.#lost(key, pointId);
      view = overlayEntries(view, decodePointIndex(body, p.id, `${this.bucket.url}/${key}`));
    }
    return view.filter((e) => e.volumeId === volume.id);
  }

  /** The latest point's blocks: what arrived since lies in the holder's log, not in the bucket. */
  async headEntries(volumeName: string): Promise<IndexEntry[]> {
    const latest = this.catalog.points.at(-1);
    return latest ? this.pointEntries(latest.id, volumeName) : [];
  }

  /** A span of a segment, by range GETs of the chunk objects it crosses (into `into` when given). */
  async readSpan(segment: number, offset: number, length: number, into?: Buffer): Promise<Buffer> {
    const span = await readChain(this.bucket, this.chunks.get(segment) ?? [], offset, length, into);
    if (span) return span;
    throw this.#lost(
      `apps/${this.name}/segments/${segmentName(segment)} bytes ${offset}-${offset + length}`,
      undefined,
    );
  }

  /** A span of a segment straight into `parts`, filled in order (the record stream's framing). */
  async readSpanParts(segment: number, offset: number, parts: Buffer[]): Promise<void> {
    const length = parts.reduce((n, b) => n + b.length, 0);
    const span = await this.readSpan(segment, offset, length);
    let at = 0;
    for (const p of parts) at += span.copy(p, 0, at, at + p.length);
  }

  async missingSegments(entries: readonly IndexEntry[]): Promise<string[]> {
    const wanted = new Set(entries.map((e) => e.segment));
    return [...wanted]
      .filter((s) => !this.chunks.has(s))
      .map((s) => `${this.bucket.url}/apps/${this.name}/segments/${segmentName(s)}`);
  }

  /** Nothing to lock: what another gateway deletes meanwhile fails the read, named. */
  withReadLock<T>(fn: () => Promise<T>): Promise<T> {
    return fn();
  }

  #lost(what: string, pointId: number | undefined): DrError {
    return new DrError(
      `object store ${this.bucket.url}: ${what} is gone${pointId ? ` (point ${pointId})` : ''}; retention on the gateway serving ${this.name} may have removed it meanwhile`,
      {
        code: 'store_corrupt',
        subject: what,
        remedy: `run the command again; \`dr points ${this.name}\` lists the points kept now`,
      },
    );
  }
}
