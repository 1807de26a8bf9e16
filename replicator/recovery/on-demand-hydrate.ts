/** An on-demand volume's hydrator: the chunks no read fetched, copied through the restore's lanes and worker threads. */
import { DrError } from '../../core/errors.js';
import type { VolumeKeys } from '../crypto/volume-key.js';
import type { GatewayClient } from '../transport/gateway-client.js';
import type { PointDetail } from '../transport/wire-types.js';
import { openDirect } from './image-writer.js';
import { runLanes } from './lane-pool.js';
import { missingRecord, withGatewayRetry } from './on-demand-fetch.js';
import type { BlockRange, LaneJob, LaneReport } from './range-lane.js';
import type { ReadParallelism } from './read-parallelism.js';

/** What the hydrator needs of its volume; the volume keeps the chunk map and its readers. */
export interface LaneHydration {
  client: GatewayClient;
  app: string;
  point: PointDetail;
  volume: string;
  /** The local copy (opened a second time O_DIRECT, as a restore's image, where the file system allows). */
  path: string;
  keys: VolumeKeys;
  /**
   * The lanes' job: the local copy's descriptor, the point's block MACs (a record with another
   * is never written), zero blocks left as holes, each range's writes finished before the next.
   */
  job: LaneJob;
  parallel: ReadParallelism;
  chunkBlocks: number;
  /** 1 where the gateway holds a record for a block. */
  stored: Uint8Array;
  /** A fresh picker of the next chunks to copy (hydrationOrder), one per try. */
  picker: () => () => number[] | undefined;
  /** Resolves once no server read waits on the gateway: a read never queues behind hydration. */
  readsFirst: () => Promise<void>;
  /** Marks chunks as being fetched; the function returned ends that, `landed` saying whether they are local now. */
  claim: (chunks: readonly number[]) => (landed: boolean) => void;
  /** Whether to hand out no more runs (the volume failed). */
  stopped: () => boolean;
  /** Aborted when the volume closes: the lanes stop after their writes. */
  signal: AbortSignal;
  retryForMs: number;
  onRetry: () => void;
}

/**
 * Copies every chunk the picker hands out, each run of chunks one range of a lane
 * (`recovery.restoreParallel` ranges at once on `restoreWorkers` threads, as a full restore): a
 * run's chunks become local once the lane has written all its blocks, each checked against the
 * point's MAC. A gateway that cannot be reached is tried again with backoff, the wait starting
 * over after each try that got chunks done; a bad or missing record throws (`block_corrupt`,
 * `store_corrupt`).
 */
export async function hydrateThroughLanes(h: LaneHydration): Promise<void> {
  let progressed = false;
  // Whole pages go past the page cache, as a restore's do; readers read a chunk only once its
  // run's writes have landed, and the server never writes a chunk being copied.
  const direct = await openDirect(h.path);
  const withDirect = { ...h, job: { ...h.job, directFd: direct?.fd } };
  try {
    await withGatewayRetry(
      () =>
        hydrateOnce(withDirect, () => {
          progressed = true;
        }),
      h.retryForMs,
      () => h.signal.aborted,
      h.onRetry,
      () => {
        const p = progressed;
        progressed = false;
        return p;
      },
    );
  } finally {
    // Every lane has ended (runLanes waits for their writes) before the descriptor closes.
    await direct?.close();
  }
}

/**
 * Hydrator requests in flight when it re-checks a copy an earlier attempt left, chunk by chunk:
 * two of the gateway client's four connections, so a read the server waits on finds one free.
 */
const CHUNK_BY_CHUNK_PARALLEL = 2;

/**
 * Copies a copy an earlier attempt left (each block kept only where its MAC is the point's, see
 * fetchChunks) run by run, on the volume's own client, `ensure` fetching each run.
 */
export async function copyChunkByChunk(
  pick: () => number[] | undefined,
  readsFirst: () => Promise<void>,
  stopped: () => boolean,
  ensure: (run: number[]) => Promise<void>,
): Promise<void> {
  const lane = async () => {
    for (;;) {
      await readsFirst();
      if (stopped()) return;
      const run = pick();
      if (!run) return;
      await ensure(run);
    }
  };
  await Promise.all(Array.from({ length: CHUNK_BY_CHUNK_PARALLEL }, lane));
}

/**
 * Marks `chunks` as being fetched (readers wait on `inflight`, then look again); the function
 * returned ends that, calling `landed` first when they are local now.
 */
export function claimChunks(
  inflight: Map<number, Promise<void>>,
  chunks: readonly number[],
  landed: () => void,
): (ok: boolean) => void {
  let settle!: () => void;
  const p = new Promise<void>((resolve) => {
    settle = resolve;
  });
  for (const c of chunks) inflight.set(c, p);
  return (ok) => {
    for (const c of chunks) inflight.delete(c);
    if (ok) landed();
    settle();
  };
}

interface Run {
  chunks: readonly number[];
  /** Blocks the lane reported opened and checked. */
  got: Set<number>;
  release: (landed: boolean) => void;
}

async function hydrateOnce(h: LaneHydration, onProgress: () => void): Promise<void> {
  const cb = h.chunkBlocks;
  const pick = h.picker();
  /** Runs handed out and not yet done, by their first block; and by each chunk. */
  const runs = new Map<number, Run>();
  const owner = new Map<number, Run>();
  const halt = new AbortController();
  let bad: { block: number; reason: string } | undefined;
  let failure: unknown;

  const finish = (range: BlockRange) => {
    const run = runs.get(range.from);
    if (!run) return;
    runs.delete(range.from);
    for (const c of run.chunks) owner.delete(c);
    let landed = false;
    try {
      // Every stored block of the run must have come: a record the gateway left out is no hole.
      for (const c of run.chunks) {
        for (let b = c * cb; b < Math.min(h.stored.length, (c + 1) * cb); b++) {
          if (h.stored[b] && !run.got.has(b)) throw missingRecord(h, b);
        }
      }
      landed = true;
    } finally {
      run.release(landed);
    }
    onProgress();
  };

  const nextRange = async (done?: BlockRange): Promise<BlockRange | undefined> => {
    try {
      if (done) finish(done);
      await h.readsFirst();
      if (h.stopped() || bad || halt.signal.aborted) return undefined;
      const chunks = pick();
      const first = chunks?.[0];
      const last = chunks?.at(-1);
      if (!chunks || first === undefined || last === undefined) return undefined;
      const run: Run = { chunks, got: new Set(), release: h.claim(chunks) };
      const range = { from: first * cb, to: Math.min(h.stored.length, (last + 1) * cb) };
      runs.set(range.from, run);
      for (const c of chunks) owner.set(c, run);
      return range;
    } catch (err) {
      failure ??= err;
      halt.abort();
      return undefined;
    }
  };

  const report = (r: LaneReport) => {
    for (const b of r.blocks) owner.get(Math.floor(b / cb))?.got.add(b);
    const p = r.problems[0];
    if (p && !bad) {
      bad = p;
      halt.abort();
    }
  };

  try {
    await runLanes({
      client: h.client,
      keys: h.keys,
      job: h.job,
      parallel: h.parallel,
      collect: false,
      nextRange,
      report,
      signal: AbortSignal.any([h.signal, halt.signal]),
    });
  } catch (err) {
    // Stopped for a bad or missing block: that block is the news, not the lanes' abort.
    if ((!bad && !failure) || h.signal.aborted) throw err;
  } finally {
    // Runs not done stay to fetch (by a reader, or the next try).
    for (const run of runs.values()) run.release(false);
  }
  if (bad) throw corrupt(h, bad);
  if (failure) throw failure;
}

function corrupt(h: LaneHydration, p: { block: number; reason: string }): DrError {
  const message = p.reason.includes(`block ${p.block}`)
    ? p.reason
    : `${h.app}/${h.volume} block ${p.block}: ${p.reason}`;
  return new DrError(message, {
    code: 'block_corrupt',
    subject: `${h.volume} block ${p.block}`,
    remedy: 'recover an older point, or run `dr verify` to list every damaged block',
  });
}
