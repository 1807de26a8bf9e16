// How a point read is spread: ranges of blocks fetched at once, and worker threads that open them.
import { availableParallelism } from 'node:os';
import { DrError } from '../../core/errors.js';

export interface ReadParallelism {
  /** Ranges of blocks in flight at once (each its own request to the gateway), 1 to 8. */
  ranges: number;
  /** Worker threads that fetch, decrypt and write the ranges; 0: the calling thread does. */
  workers: number;
}

export const MAX_RANGES = 8;
export const MAX_WORKERS = 8;

/**
 * The default for this machine, from bench/restore.mjs (docs/benchmarks.md, "Restores"): as many
 * ranges as cores (at least two, so the link and the gateway never idle while this side decrypts).
 * Worker threads only from four cores, one per two: on two cores a thread of lanes beside an idle
 * main thread cost 0.3-0.6 CPU-s more per GiB than the same lanes on the main thread and was no
 * faster (measured with O_DIRECT writes). On two cores: 2 ranges, no worker.
 */
export function defaultParallelism(cores = availableParallelism()): ReadParallelism {
  return {
    ranges: Math.min(MAX_RANGES, Math.max(2, cores)),
    workers: cores >= 4 ? Math.min(MAX_WORKERS, Math.floor(cores / 2)) : 0,
  };
}

/** dr.yaml's recovery.restoreParallel / restoreWorkers over the machine's default. */
export function parallelismOf(recovery: {
  restoreParallel?: number | undefined;
  restoreWorkers?: number | undefined;
}): ReadParallelism {
  const d = defaultParallelism();
  return {
    ranges: recovery.restoreParallel ?? d.ranges,
    workers: recovery.restoreWorkers ?? d.workers,
  };
}

/**
 * A count given on the command line (`--parallel`, `--workers`): a whole number in [min, max],
 * or a usage error naming the flag and the range.
 */
export function parseCount(flag: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new DrError(`${flag} ${value} is not a whole number from ${min} to ${max}`, {
      code: 'usage',
      subject: flag,
      remedy: `pass ${flag} N with ${min} <= N <= ${max}`,
    });
  }
  return n;
}

/**
 * The ranges a volume of `blocks` blocks is fetched in: one with a single lane, else two per
 * lane so a lane that finishes early takes more work, at least 64 blocks each.
 */
export function rangesOf(blocks: number, lanes: number): Array<{ from: number; to: number }> {
  const size = lanes <= 1 ? Math.max(1, blocks) : Math.max(64, Math.ceil(blocks / (2 * lanes)));
  const out: Array<{ from: number; to: number }> = [];
  for (let from = 0; from < blocks; from += size)
    out.push({ from, to: Math.min(blocks, from + size) });
  // The last range is open-ended: a record the store holds beyond the volume's end is reported.
  const last = out.at(-1);
  if (last) last.to = 2 ** 32;
  return out;
}
