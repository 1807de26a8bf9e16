/**
 * The seam between the gateway's HTTP parts and where replicas live: every part takes a
 * GatewayStore, never the file store's classes. The file store (BlockStore over segment files)
 * is one implementation; another (an object store, say) implements these two types.
 */
import type { AppStore } from './app-store.js';

/** The replica's parts that reading committed points uses. */
type ReadKeys =
  | 'name'
  | 'volumes'
  | 'points'
  | 'point'
  | 'pointEntries'
  | 'headEntries'
  | 'readSpan'
  | 'readSpanParts'
  | 'missingSegments'
  | 'withReadLock';

/** One app's replica as the gateway uses it: volumes, batches, points, reads and upkeep. */
export type AppReplica = Pick<
  AppStore,
  | ReadKeys
  | 'storeId'
  | 'committedSeq'
  | 'registerVolumes'
  | 'appendBatch'
  | 'commitPoint'
  | 'applyRetention'
  | 'collectGarbage'
  | 'stats'
>;

/** What reading committed points needs: any gateway serves it, holder or not. */
export type ReadableReplica = Pick<AppReplica, ReadKeys>;

/** An app's files at a quiet moment: the segments with their fsync'd sizes and the kept points. */
export interface ReplicaFiles {
  dir: string;
  segments: { segment: number; size: number; path: string }[];
  pointIds: number[];
}

/** Every replica the gateway holds. */
export interface GatewayStore {
  /** Where it lives (named in errors; its file system's free space is checked). */
  readonly dir: string;
  /** Names of the apps held, sorted. */
  apps(): string[];
  app(name: string): AppReplica | undefined;
  /** The app's replica, created empty when there is none. */
  ensureApp(name: string): Promise<AppReplica>;
  close(): Promise<void>;
}
