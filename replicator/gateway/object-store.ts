/**
 * The gateway's store in a bucket (S3, Ceph RGW, Alibaba OSS): the file store is its local
 * write-ahead log and cache, and every recovery point is in the bucket before its commit is
 * acknowledged. A gateway on an empty machine fetches every app from the bucket at start.
 */
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '../../core/errors.js';
import { type Logger, silentLog } from '../../core/log.js';
import type { AppStore } from './app-store.js';
import { BlockStore } from './block-store.js';
import { appsInBucket, BucketMirror, fetchApp } from './bucket-mirror.js';
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
  directIo?: boolean;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false; // missing (or unreadable, which opening it reports properly)
  }
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
    const point = await this.local.commitPoint(request);
    // A failed upload fails the commit; the agent's resend finds the point and uploads again.
    await this.upload();
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
    return out;
  };
  stats: AppReplica['stats'] = () => this.local.stats();

  /**
   * Copies what the bucket lacks (in the order that keeps its points readable). Batches keep
   * going into the local log meanwhile; the caller's answer waits for the bucket.
   */
  upload(): Promise<{ bytes: number }> {
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
    ...rest
  }: ObjectStoreOptions): Promise<ObjectStore> {
    await bucket.check();
    const inBucket = await appsInBucket(bucket);
    for (const app of inBucket) {
      const appDir = join(dir, 'apps', app);
      if (!(await exists(appDir))) await fetchApp(bucket, app, appDir, log.child({ app }));
    }
    const local = await BlockStore.open({ dir, log, ...rest });
    const store = new ObjectStore(local, bucket, log);
    for (const name of local.apps()) {
      const app = local.app(name) as AppStore;
      const mirrored = new MirroredApp(
        app,
        await BucketMirror.open(bucket, name, log),
        log.child({ app: name }),
      );
      const { bytes } = await mirrored.upload();
      if (bytes > 0 && inBucket.includes(name))
        log.info({ app: name, bytes }, 'uploaded what the bucket lacked after a restart');
      store.#apps.set(name, mirrored);
    }
    return store;
  }

  apps(): string[] {
    return [...this.#apps.keys()].sort();
  }

  app(name: string): AppReplica | undefined {
    return this.#apps.get(name);
  }

  async ensureApp(name: string): Promise<AppReplica> {
    const held = this.#apps.get(name);
    if (held) return held;
    let creating = this.#creating.get(name);
    if (!creating) {
      creating = (async () => {
        const app = (await this.local.ensureApp(name)) as AppStore;
        const log = this.log.child({ app: name });
        const mirrored = new MirroredApp(app, await BucketMirror.open(this.bucket, name, log), log);
        await mirrored.upload();
        this.#apps.set(name, mirrored);
        return mirrored;
      })().finally(() => this.#creating.delete(name));
      this.#creating.set(name, creating);
    }
    return creating;
  }

  async close(): Promise<void> {
    await this.local.close();
    this.bucket.close();
  }
}
