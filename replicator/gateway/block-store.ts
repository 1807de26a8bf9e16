import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { type Logger, silentLog } from '../../core/log.js';
import { checkName, isName } from '../../core/names.js';
import { AppStore } from './app-store.js';

export type { AppStats, AppStore, CommitRequest } from './app-store.js';
export type {
  PointInfo,
  PointLabel,
  PointVolumeInfo,
  VolumeMeta,
  VolumeProposal,
} from './catalog.js';
export type { GcResult } from './garbage-collector.js';
export type { IndexEntry } from './point-index.js';
export type { RetentionRules } from './retention.js';

export interface BlockStoreOptions {
  /** The store folder; apps live in `<dir>/apps/<app>/`. Created when missing. */
  dir: string;
  log?: Logger;
  /** A segment file is sealed once it holds this many bytes (256 MiB). */
  segmentBytes?: number;
  /** Segment appends with O_DIRECT where the file system allows (default true). */
  directIo?: boolean;
}

/** The gateway's durable store of encrypted blocks: one AppStore per protected app. It never holds keys. */
export class BlockStore {
  readonly #apps = new Map<string, AppStore>();
  readonly #creating = new Map<string, Promise<AppStore>>();

  private constructor(
    readonly dir: string,
    private readonly log: Logger,
    private readonly segmentBytes: number,
    private readonly directIo: boolean,
  ) {}

  /** Opens the store and every app in it, recovering each from a crash if needed. */
  static async open({
    dir,
    log = silentLog,
    segmentBytes = 256 * 1024 * 1024,
    directIo = true,
  }: BlockStoreOptions): Promise<BlockStore> {
    const store = new BlockStore(dir, log, segmentBytes, directIo);
    const appsDir = join(dir, 'apps');
    await mkdir(appsDir, { recursive: true });
    for (const entry of await readdir(appsDir, { withFileTypes: true })) {
      if (!entry.isDirectory() || !isName('app', entry.name)) continue;
      const app = await AppStore.open(store.#options(entry.name));
      store.#apps.set(entry.name, app);
    }
    return store;
  }

  /** Names of the apps held, sorted. */
  apps(): string[] {
    return [...this.#apps.keys()].sort();
  }

  app(name: string): AppStore | undefined {
    return this.#apps.get(name);
  }

  /** The app's store, created (empty, with a new storeId) on first use. */
  async ensureApp(name: string): Promise<AppStore> {
    const held = this.#apps.get(name);
    if (held) return held;
    checkName('app', name, 'gateway store');
    let creating = this.#creating.get(name);
    if (!creating) {
      creating = AppStore.create(this.#options(name)).then(
        (app) => {
          this.#apps.set(name, app);
          this.#creating.delete(name);
          return app;
        },
        (err: unknown) => {
          this.#creating.delete(name);
          throw err;
        },
      );
      this.#creating.set(name, creating);
    }
    return creating;
  }

  /** Closes the app and forgets it (its files stay); `load` opens it again. */
  async forget(name: string): Promise<void> {
    const app = this.#apps.get(name);
    this.#apps.delete(name);
    await app?.close();
  }

  /** Opens an app whose folder was put in place behind the store's back (fetched from a bucket). */
  async load(name: string): Promise<AppStore> {
    checkName('app', name, 'gateway store');
    await this.forget(name);
    const app = await AppStore.open(this.#options(name));
    this.#apps.set(name, app);
    return app;
  }

  async close(): Promise<void> {
    await Promise.all([...this.#apps.values()].map((a) => a.close()));
  }

  #options(name: string) {
    return {
      dir: join(this.dir, 'apps', name),
      name,
      log: this.log.child({ app: name }),
      segmentBytes: this.segmentBytes,
      directIo: this.directIo,
    };
  }
}
