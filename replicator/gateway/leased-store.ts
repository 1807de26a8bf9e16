/**
 * The object store when several gateways serve one bucket: this gateway writes only the apps
 * whose lease it holds (taking one over fetches it from the bucket), redirects writes for an app
 * another gateway holds to that gateway, and serves reads of any app's committed points straight
 * from the bucket.
 */
import { DrError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { appsInBucket } from './bucket-mirror.js';
import { BucketApp } from './bucket-reader.js';
import type { GatewayLeases, LeaseHolder } from './gateway-leases.js';
import type { AppReplica, GatewayStore, ReadableReplica } from './gateway-store.js';
import { heldApp } from './held-app.js';
import { HttpError } from './http-status.js';
import type { ObjectBucket } from './object-bucket.js';
import type { ObjectStore } from './object-store.js';

/** Where each app is served: the gateway's routes ask before reading and before writing. */
export interface Placement {
  /** The app's committed points for reading: the local replica if held here, else the bucket's. */
  reader(app: string): Promise<ReadableReplica>;
  /**
   * Whether this gateway holds the app; refuses with a redirect (307 naming the holder) when
   * another gateway does.
   */
  forWrite(app: string): Promise<boolean>;
  /** Called with each app this gateway stops serving (its lease lost). */
  onLost(listener: (app: string) => void): void;
}

/** The refusal that sends an agent to the gateway holding the app. */
export function servedElsewhere(app: string, holder: LeaseHolder): HttpError {
  return new HttpError(
    307,
    new DrError(`app ${app} is served by the gateway at ${holder.address}`, {
      code: 'app_elsewhere',
      subject: holder.address,
      remedy: `send the request to ${holder.address} (the client follows this redirect by itself)`,
    }),
  );
}

/**
 * Binds the bucket to one key encryption key id (`gateways/kek-id`, written by the first shared
 * gateway): a gateway whose home has another KEK is refused before it serves anything, since the
 * agents it would take over could not unwrap what the bucket holds, nor it theirs.
 */
export async function claimBucketKek(bucket: ObjectBucket, kekId: string): Promise<void> {
  const key = 'gateways/kek-id';
  const written = await bucket.putIf(key, Buffer.from(kekId), undefined);
  if (written !== 'conflict') return;
  const held = (await bucket.get(key))?.toString('utf8').trim();
  if (held === kekId) return;
  throw new DrError(
    `object store ${bucket.url} is served with key encryption key ${held}, but this gateway's home has ${kekId}`,
    {
      code: 'key_mismatch',
      subject: bucket.url,
      remedy:
        'every gateway of one bucket runs from a copy of the same home (keys/kek.key); or give this one its own bucket or prefix',
    },
  );
}

export class LeasedStore implements GatewayStore, Placement {
  #known: string[] = [];
  readonly #listeners: Array<(app: string) => void> = [];
  readonly #timer: NodeJS.Timeout;

  private constructor(
    private readonly objects: ObjectStore,
    readonly leases: GatewayLeases,
    private readonly log: Logger,
  ) {
    // The apps in the bucket, for the status list; a failed listing keeps the last one.
    this.#timer = setInterval(() => void this.#refresh().catch(() => undefined), 5000);
    this.#timer.unref();
  }

  /** `leases` must tell `lost` of each app it loses (its onLost). */
  static async open(
    objects: ObjectStore,
    leases: (onLost: (app: string) => void) => GatewayLeases,
    log: Logger,
  ): Promise<LeasedStore> {
    let store: LeasedStore | undefined;
    const made = leases((app) => store?.lost(app));
    store = new LeasedStore(objects, made, log);
    await store.#refresh();
    return store;
  }

  get dir(): string {
    return this.objects.dir;
  }

  apps(): string[] {
    return [...new Set([...this.#known, ...this.leases.held()])].sort();
  }

  /** The app's replica, only while this gateway holds its lease. */
  app(name: string): AppReplica | undefined {
    return this.leases.holds(name) ? this.objects.app(name) : undefined;
  }

  /** Takes the app's lease and the app (from the bucket when needed), or redirects to its holder. */
  async ensureApp(name: string): Promise<AppReplica> {
    const got = await this.leases.acquire(name);
    if (!got.ours) throw servedElsewhere(name, got.holder);
    try {
      return await this.objects.adopt(name, () => this.leases.check(name), got.token);
    } catch (err) {
      this.objects.release(name);
      await this.leases.release(name);
      throw err;
    }
  }

  async reader(name: string): Promise<ReadableReplica> {
    const held = this.app(name);
    if (held) return held;
    const inBucket = await BucketApp.load(this.objects.bucket, name);
    return inBucket ?? heldApp(this, name);
  }

  async forWrite(name: string): Promise<boolean> {
    // Held and taken on: while a takeover still fetches the app, its agent waits in a new session.
    if (this.app(name)) return true;
    const holder = await this.leases.holder(name);
    if (holder && holder.id !== this.leases.id) throw servedElsewhere(name, holder);
    return false;
  }

  onLost(listener: (app: string) => void): void {
    this.#listeners.push(listener);
  }

  /** Another gateway has the app now: stop serving it at once. */
  lost(name: string): void {
    this.objects.release(name);
    for (const l of this.#listeners) l(name);
    this.log.info({ app: name }, 'stopped serving the app');
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.leases.close();
    await this.objects.close();
  }

  async #refresh(): Promise<void> {
    this.#known = await appsInBucket(this.objects.bucket);
  }
}
