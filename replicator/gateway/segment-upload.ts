/**
 * Segment bytes into the bucket as chunk objects, several uploads at once. A segment's end in the
 * bucket (what the mirror counts as uploaded, and what a reader of the bucket follows) advances
 * only over chunks that are all in the bucket from offset 0: a chunk past one that failed, or that
 * a crash cut short, is not part of the chain, and is deleted (here after a failure; by
 * BucketMirror.open at the next start after a crash) before anything could be written at its offset.
 *
 * Each chunk's key carries the uploading gateway's fencing token (chunk-chains.ts).
 */
import { open } from 'node:fs/promises';
import { BufferPool } from './buffer-pool.js';
import { chunkKey } from './chunk-chains.js';
import type { ReplicaFiles } from './gateway-store.js';
import type { ObjectBucket } from './object-bucket.js';

export interface SegmentUploadOptions {
  bucket: ObjectBucket;
  app: string;
  /** No chunk is larger. */
  chunkBytes: number;
  /** Chunks read and uploaded at once (memory: this many chunks). */
  atOnce: number;
  /** The fencing token of this gateway's lease on the app (0: one gateway, no lease). */
  token?: number;
  /** Throws when this gateway may no longer write the app (checked before deleting). */
  guard?: () => Promise<void>;
}

/** Chunk buffers by chunk size, shared by every app's uploads: four spares at most. */
const pools = new Map<number, BufferPool>();
const poolFor = (chunkBytes: number) => {
  const pool = pools.get(chunkBytes) ?? new BufferPool(chunkBytes, 4);
  pools.set(chunkBytes, pool);
  return pool;
};

interface Task {
  segment: number;
  path: string;
  offset: number;
  length: number;
  done: boolean;
}

/**
 * Uploads each segment's bytes from its end in the bucket (`ends`, updated in place) to its
 * settled size. Answers the bytes that joined the chain; a failure throws after every upload
 * started has ended, with `ends` advanced over what did arrive in order.
 */
export async function uploadSegmentBytes(
  files: ReplicaFiles,
  ends: Map<number, number>,
  { bucket, app, chunkBytes, atOnce, token = 0, guard }: SegmentUploadOptions,
): Promise<number> {
  const tasks: Task[] = [];
  for (const { segment, size, path } of files.segments) {
    for (let at = ends.get(segment) ?? 0; at < size; at += chunkBytes)
      tasks.push({
        segment,
        path,
        offset: at,
        length: Math.min(chunkBytes, size - at),
        done: false,
      });
  }
  if (tasks.length === 0) return 0;
  const pool = poolFor(chunkBytes);
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async () => {
    while (!failure && next < tasks.length) {
      const task = tasks[next++] as Task;
      try {
        const fh = await open(task.path, 'r');
        const buf = pool.take();
        try {
          const { bytesRead } = await fh.read(buf, 0, task.length, task.offset);
          if (bytesRead !== task.length)
            throw new Error(`short read of ${task.path} at ${task.offset}`);
        } finally {
          await fh.close();
        }
        await bucket.put(
          chunkKey(app, task.segment, task.offset, token),
          buf.subarray(0, task.length),
        );
        // Only after a PUT that ended well: a failed one may leave the buffer in a socket's queue.
        pool.give(buf);
        task.done = true;
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(atOnce, tasks.length) }, worker));
  // The chain grows over the chunks that arrived in order; the ones past a gap are orphans.
  let bytes = 0;
  const orphans: string[] = [];
  const stopped = new Set<number>();
  for (const t of tasks) {
    if (t.done && !stopped.has(t.segment)) {
      ends.set(t.segment, t.offset + t.length);
      bytes += t.length;
    } else if (t.done) orphans.push(chunkKey(app, t.segment, t.offset, token));
    else stopped.add(t.segment);
  }
  if (failure) {
    // Best effort: what stays is found and deleted at the next start (BucketMirror.open).
    // A gateway that lost the app meanwhile deletes nothing (its chunks are the holder's to clear).
    if (orphans.length > 0)
      await (guard?.() ?? Promise.resolve())
        .then(() => bucket.delete(orphans))
        .catch(() => undefined);
    throw failure.err;
  }
  return bytes;
}
