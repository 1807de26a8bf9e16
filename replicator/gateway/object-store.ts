/**
 * The gateway's store in a bucket (S3, Ceph RGW, Alibaba OSS): the file store is its local
 * write-ahead log and cache, and every recovery point is in the bucket before its commit is
 * acknowledged. A gateway on an empty machine fetches every app's catalog and indexes from the
 * bucket at start, and reads the segments it has no file of from the bucket when needed.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '../../core/errors.js';
import { type Logger, silentLog } from '../../core/log.js';
import type { AppStore } from './app-store.js';
import { BlockStore } from './block-store.js';
import { fetchApp } from './bucket-fetch.js';
import { appsInBucket, BucketMirror, type SyncReport } from './bucket-mirror.js';
import { descendsFrom } from './bucket-reader.js';
import type { AppReplica, GatewayStore } from './gateway-store.js';
import type { ObjectBucket } from './object-bucket.js';

/** Segment bytes that start a push to the bucket between commits. */
const PUSH_BYTES = 4 * 1024 * 1024;

export interface ObjectStoreOptions {
  /** The local folder: the write-ahead log (segment files) and a copy of every point. */
  dir: string;
  bucket: ObjectBucket;
  log?: Logger;
  segmentBytes?: number;
  /**
   * Not used: the uploads read each batch back within a second of its append, so the log goes
   * through the page cache (with O_DIRECT every byte sent would be read from the disk again).
   */
  directIo?: boolean;
  /**
   * Several gateways share the bucket: no app is fetched or uploaded at start; each is taken
   * (`adopt`) once this gateway holds its lease, and let go (`release`) when it loses it.
   */
  leased?: boolean;
}

/**
 * One app over its local files and its copy in the bucket. Batches are acknowledged once fsync'd
 * in the local log; a commit, retention or collection is acknowledged once the bucket holds its
 * result. Reads come from the local copy.
 */
class MirroredApp implements AppReplica {
  /** Batch bytes appended since the last push started. */
  #unpushed = 0;
  #pushing: Promise<void> | undefined;

  constructor(
    private readonly local: AppStore,
    private readonly mirror: BucketMirror,
    private readonly log: Logger,
  ) {}

  /**
   * Sends the log's new segment bytes to the bucket between commits (one push at a time), so a
   * commit waits only for the last few. A failed push costs nothing: the commit sends them.
   */
  #push(): void {
    if (this.#pushing) return;
    this.#unpushed = 0;
    this.#pushing = this.mirror
      .pushSegments(this.local)
      .then(
        () => undefined,
        (err: unknown) =>
          this.log.debug({ err: errorMessage(err) }, 'segment push failed; the commit sends them'),
      )
      .finally(() => {
        this.#pushing = undefined;
      });
  }

  get name() {
    return this.local.name;
  }
  get storeId() {
    return this.local.storeId;
  }
  get committedSeq() {
    return this.local.committedSeq;
  }
  volumes: AppReplica['volumes'] = () => this.local.volumes();
  registerVolumes: AppReplica['registerVolumes'] = async (proposals) => {
    const before = JSON.stringify(this.local.volumes());
    const out = await this.local.registerVolumes(proposals);
    // Every session proposes its volumes again: only a change goes to the bucket.
    if (JSON.stringify(this.local.volumes()) !== before) await this.upload();
    return out;
  };
  appendBatch: AppReplica['appendBatch'] = async (seq, bytes, decoded) => {
    const out = await this.local.appendBatch(seq, bytes, decoded);
    this.#unpushed += Buffer.isBuffer(bytes)
      ? bytes.length
      : bytes.reduce((n, b) => n + b.length, 0);
    if (this.#unpushed >= PUSH_BYTES) this.#push();
    return out;
  };
  commitPoint: AppReplica['commitPoint'] = async (request) => {
    const t0 = performance.now();
    const point = await this.local.commitPoint(request);
    const t1 = performance.now();
    // A failed upload fails the commit; the agent's resend finds the point and uploads again.
    const sent = await this.upload();
    this.log.info(
      {
        point: point.id,
        localMs: Math.round(t1 - t0),
        uploadMs: Math.round(performance.now() - t1),
        ...sent,
      },
      'point uploaded to the bucket',
    );
    return point;
  };
  points: AppReplica['points'] = () => this.local.points();
  point: AppReplica['point'] = (ref) => this.local.point(ref);
  pointEntries: AppReplica['pointEntries'] = (id, volume) => this.local.pointEntries(id, volume);
  headEntries: AppReplica['headEntries'] = (volume) => this.local.headEntries(volume);
  readSpan: AppReplica['readSpan'] = (segment, offset, length, into) =>
    this.local.readSpan(segment, offset, length, into);
  readSpanParts: AppReplica['readSpanParts'] = (segment, offset, parts) =>
    this.local.readSpanParts(segment, offset, parts);
  missingSegments: AppReplica['missingSegments'] = (entries) => this.local.missingSegments(entries);
  withReadLock: AppReplica['withReadLock'] = (fn) => this.local.withReadLock(fn);
  applyRetention: AppReplica['applyRetention'] = async (now, rules) => {
    const out = await this.local.applyRetention(now, rules);
    if (out.removed.length > 0) await this.upload();
    return out;
  };
  collectGarbage: AppReplica['collectGarbage'] = async () => {
    const out = await this.local.collectGarbage();
    if (out.segmentsRemoved + out.segmentsCompacted > 0) await this.upload();
    // Multipart uploads a crash or a failed abort left: the bucket keeps their parts until then.
    await this.mirror.abortLeftovers();
    // Chunks no chain names: a gateway that stalled past its lease may have written some since.
    await this.mirror.deleteStrays();
    return out;
  };
  stats: AppReplica['stats'] = () => this.local.stats();

  /**
   * Copies what the bucket lacks (in the order that keeps its points readable). Batches keep
   * going into the local log meanwhile; the caller's answer waits for the bucket.
   */
  upload(): Promise<SyncReport> {
    return this.mirror.sync(this.local);
  }
}

/** Every app's replica, with the bucket as the copy that outlives the gateway machine. */
export class ObjectStore implements GatewayStore {
  readonly #apps = new Map<string, MirroredApp>();
  readonly #creating = new Map<string, Promise<MirroredApp>>();

  private constructor(
    private readonly local: BlockStore,
    readonly bucket: ObjectBucket,
    private readonly log: Logger,
  ) {}

  get dir(): string {
    return this.local.dir;
  }

  /**
   * Checks the bucket, fetches the apps it holds that the local folder lacks (a new or wiped
   * machine), opens the local store and uploads what a crash left behind, in order.
   */
  static async open({
    dir,
    bucket,
    log = silentLog,
    leased = false,
    directIo: _readBackSoon,
    ...rest
  }: ObjectStoreOptions): Promise<ObjectStore> {
    await bucket.check();
    const store = new ObjectStore(
      await BlockStore.open({ dir, log, ...rest, directIo: false }),
      bucket,
      log,
    );
    if (leased) return store;
    // One gateway: it serves every app of the bucket and of its folder from the start.
    const names = new Set([...(await appsInBucket(bucket)), ...store.local.apps()]);
    for (const name of [...names].sort()) await store.adopt(name, async () => undefined);
    return store;
  }

  apps(): string[] {
    return [...this.#apps.keys()].sort();
  }

  app(name: string): AppReplica | undefined {
    return this.#apps.get(name);
  }

  /** The app's replica; one the bucket holds is taken from it, a new one is created. */
  ensureApp(name: string): Promise<AppReplica> {
    return this.adopt(name, async () => undefined);
  }

  /**
   * Takes the app on once this gateway holds its lease: the local copy is kept when it is the
   * bucket's catalog or its continuation (this gateway's own log), else fetched anew from the
   * bucket (a new storeId makes the agent resend what no committed point holds). Whatever the
   * bucket lacks is uploaded; every catalog write is conditional on the version taken here.
   */
  async adopt(name: string, guard: () => Promise<void>, token = 0): Promise<AppReplica> {
    const held = this.#apps.get(name);
    if (held) return held;
    let creating = this.#creating.get(name);
    if (!creating) {
      creating = (async () => {
        const log = this.log.child({ app: name });
        const startedAt = Date.now();
        const tagged = await this.bucket.getTagged(`apps/${name}/catalog.json`);
        let local = this.local.app(name) as AppStore | undefined;
        let catalogEtag = tagged?.etag;
        let catalog = tagged?.body;
        if (tagged && !(local && descendsFrom(local, tagged.body))) {
          await this.local.forget(name);
          const appDir = join(this.local.dir, 'apps', name);
          await rm(appDir, { recursive: true, force: true });
          ({ catalogEtag, catalog } = await fetchApp(this.bucket, name, appDir, log));
          local = await this.local.load(name);
        }
        local ??= (await this.local.ensureApp(name)) as AppStore;
        const mirror = await BucketMirror.open(this.bucket, name, log, {
          catalogEtag,
          catalog,
          guard,
          token,
        });
        // Segments the bucket holds and this machine does not are read from the bucket when needed.
        await local.attachRemote(mirror.remote());
        const mirrored = new MirroredApp(local, mirror, log);
        // Also the claim: the catalog written over the version read above, or the adoption fails.
        const { bytes } = await mirrored.upload();
        if (bytes > 0 && tagged) log.info({ bytes }, 'uploaded what the bucket lacked');
        this.#apps.set(name, mirrored);
        // How long a takeover kept the app's agent waiting (docs/benchmarks.md, bench:gateways).
        log.info({ ms: Date.now() - startedAt }, 'took the app on');
        return mirrored;
      })().finally(() => this.#creating.delete(name));
      this.#creating.set(name, creating);
    }
    return creating;
  }

  /** Stops serving the app (another gateway took it); its local files stay as a cache. */
  release(name: string): void {
    this.#apps.delete(name);
  }

  async close(): Promise<void> {
    await this.local.close();
    this.bucket.close();
  }
}
