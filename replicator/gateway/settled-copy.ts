/**
 * Copies an app's files elsewhere (to a bucket, say) without holding up its batches: the files
 * are settled between two mutations, then copied while batches flow into the log again.
 */
import type { Mutex, ReadWriteLock } from './async-lock.js';
import type { ReplicaFiles } from './gateway-store.js';

export interface SettleLocks {
  /** The app's mutation lock: `settle` runs under it. */
  mutex: Mutex;
  /** Shared while `copy` runs: deletions (exclusive) wait for it. */
  files: ReadWriteLock;
  /** The files at this instant, every written batch fsync'd (runs under the mutex). */
  settled: () => Promise<ReplicaFiles>;
}

/**
 * `settle` runs between mutations (read there what a mutation rewrites: catalog, indexes);
 * `copy` runs after it while batches flow again. Segments only grow and none is deleted until
 * `copy` returns, so their bytes up to the settled sizes stay as `settle` saw them.
 */
export async function copyWhenSettled<P, T>(
  { mutex, files, settled }: SettleLocks,
  settle: (files: ReplicaFiles) => Promise<P>,
  copy: (settled: P) => Promise<T>,
): Promise<T> {
  let release!: () => void;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  const out = await mutex.run(async () => {
    const result = await settle(await settled());
    // Shared before the mutex goes, so no deletion (exclusive, under the mutex) slips in between.
    await new Promise<void>((held) => {
      void files.shared(() => {
        held();
        return released;
      });
    });
    return result;
  });
  try {
    return await copy(out);
  } finally {
    release();
  }
}
