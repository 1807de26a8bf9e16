// Runs the lanes of a point read on worker threads, handing out ranges and gathering reports.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type ResourceLimits, Worker } from 'node:worker_threads';
import { DrError, type ErrorCode } from '../../core/errors.js';
import type { VolumeKeys } from '../crypto/volume-key.js';
import type { GatewayClient, GatewayClientOptions } from '../transport/gateway-client.js';
import { type BlockRange, type LaneJob, type LaneReport, runLane } from './range-lane.js';
import type { ReadParallelism } from './read-parallelism.js';

/** What each lane worker starts with (copied into the thread; keys never leave the process). */
export interface LaneWorkerData {
  client: GatewayClientOptions;
  keys: Pick<VolumeKeys, 'enc' | 'mac' | 'zeroMac' | 'blockSize'>;
  job: LaneJob;
  /** Lanes this thread runs at once. */
  lanes: number;
  collect: boolean;
}

export type ToLaneWorker =
  | { t: 'range'; lane: number; range: { from: number; to: number } | null }
  | { t: 'stop' };

type LaneErrorData = { message: string; code?: string; subject?: string; sys?: string };

export type FromLaneWorker =
  | { t: 'next'; lane: number; done?: BlockRange | undefined }
  | ({ t: 'report' } & LaneReport)
  | { t: 'failed'; error: LaneErrorData }
  | { t: 'done' };

export interface LanePoolOptions {
  client: GatewayClientOptions;
  keys: VolumeKeys;
  job: LaneJob;
  /** Lanes in all, spread over `workers` threads. */
  lanes: number;
  workers: number;
  collect: boolean;
  /** The next range for a lane (see NextRange); a throw fails the pool. */
  nextRange: (done?: BlockRange) => BlockRange | undefined | Promise<BlockRange | undefined>;
  report: (r: LaneReport) => void;
  /** Stops every thread (each finishes its writes first). */
  signal: AbortSignal;
  /** Limits of each thread's heap (a test starves one to see a crash become an error). */
  resourceLimits?: ResourceLimits | undefined;
}

/**
 * Starts `workers` threads running the lanes, and resolves when every thread has ended. The
 * first failure (a lane's error, a thread that crashed or ran out of memory) stops the others and
 * is thrown once all have ended, so no thread still writes when the caller closes the image.
 */
export async function runLanePool(o: LanePoolOptions): Promise<void> {
  const url = workerUrl();
  let failure: Error | undefined;
  const threads: Worker[] = [];
  const fail = (err: Error) => {
    failure ??= err;
    for (const w of threads) w.postMessage({ t: 'stop' } satisfies ToLaneWorker);
  };
  const onAbort = () => {
    for (const w of threads) w.postMessage({ t: 'stop' } satisfies ToLaneWorker);
  };
  o.signal.addEventListener('abort', onAbort);
  const ended = Array.from({ length: o.workers }, (_, i) => {
    const lanes = Math.floor(o.lanes / o.workers) + (i < o.lanes % o.workers ? 1 : 0);
    const data: LaneWorkerData = {
      client: o.client,
      keys: {
        enc: o.keys.enc,
        mac: o.keys.mac,
        zeroMac: o.keys.zeroMac,
        blockSize: o.keys.blockSize,
      },
      job: o.job,
      lanes,
      collect: o.collect,
    };
    const w = new Worker(url, {
      workerData: data,
      ...(o.resourceLimits ? { resourceLimits: o.resourceLimits } : {}),
    });
    threads.push(w);
    let done = false;
    w.on('message', (m: FromLaneWorker) => {
      if (m.t === 'next') {
        const give = (range: BlockRange | undefined) =>
          w.postMessage({ t: 'range', lane: m.lane, range: range ?? null } satisfies ToLaneWorker);
        if (failure || o.signal.aborted) give(undefined);
        else {
          Promise.resolve()
            .then(() => o.nextRange(m.done))
            .then(
              (range) => give(failure || o.signal.aborted ? undefined : range),
              (err: unknown) => {
                fail(err instanceof Error ? err : new Error(String(err)));
                give(undefined);
              },
            );
        }
      } else if (m.t === 'report') o.report(m);
      else if (m.t === 'failed') fail(laneError(m.error));
      else done = true;
    });
    return new Promise<void>((resolve) => {
      w.on('error', (err) => fail(threadError(`failed (${err.message})`, err)));
      w.on('exit', (code) => {
        if (!done) fail(threadError(`stopped before its ranges were done (exit code ${code})`));
        resolve();
      });
    });
  });
  try {
    await Promise.all(ended);
  } finally {
    o.signal.removeEventListener('abort', onAbort);
  }
  o.signal.throwIfAborted();
  if (failure) throw failure;
}

function threadError(what: string, cause?: unknown): DrError {
  return new DrError(`a restore worker thread ${what}`, {
    code: 'child_failed',
    subject: 'restore worker thread',
    remedy:
      'run the restore again; with recovery.restoreWorkers: 0 in dr.yaml (or --workers 0) it decrypts on the main thread',
    cause,
  });
}

function laneError(e: LaneErrorData): DrError {
  return new DrError(e.message, {
    code: (e.code ?? 'child_failed') as ErrorCode,
    ...(e.subject ? { subject: e.subject } : {}),
    // A system error (ENOSPC) keeps its code for the caller to tell it apart.
    ...(e.sys ? { cause: Object.assign(new Error(e.message), { code: e.sys }) } : {}),
  });
}

/** The compiled worker beside this module, or (running from the TypeScript sources) under dist/. */
function workerUrl(): URL {
  const beside = new URL('./lane-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(beside))) return beside;
  const built = new URL('../../dist/replicator/recovery/lane-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(built))) return built;
  throw new DrError('the compiled restore worker (lane-worker.js) is missing', {
    code: 'dependency_missing',
    subject: fileURLToPath(beside),
    remedy: 'run `npm run build` in the Lifeboat checkout, or restore with --workers 0',
  });
}

export interface RunLanesOptions {
  client: GatewayClient;
  keys: VolumeKeys;
  job: LaneJob;
  parallel: ReadParallelism;
  collect: boolean;
  nextRange: LanePoolOptions['nextRange'];
  report: (r: LaneReport) => void;
  signal: AbortSignal;
  resourceLimits?: ResourceLimits | undefined;
}

/**
 * Runs `parallel.ranges` lanes, on `parallel.workers` threads (runLanePool) or on this thread.
 * Either way the first failure stops the other lanes and is thrown once every lane has ended (no
 * write is left behind); an abort of `signal` throws its reason.
 */
export async function runLanes(o: RunLanesOptions): Promise<void> {
  if (o.parallel.workers > 0) {
    await runLanePool({
      // The thread's own client goes first where this one went for the app (several gateways).
      client: o.client.optionsFor(o.job.app),
      keys: o.keys,
      job: o.job,
      lanes: o.parallel.ranges,
      workers: Math.min(o.parallel.workers, o.parallel.ranges),
      collect: o.collect,
      nextRange: o.nextRange,
      report: o.report,
      signal: o.signal,
      resourceLimits: o.resourceLimits,
    });
    return;
  }
  const halt = new AbortController();
  const stopped = AbortSignal.any([o.signal, halt.signal]);
  let failure: unknown;
  await Promise.all(
    Array.from({ length: o.parallel.ranges }, () =>
      runLane(o.client, o.keys, o.job, async (done) => o.nextRange(done), o.report, {
        collect: o.collect,
        signal: stopped,
      }).catch((err: unknown) => {
        failure ??= err;
        halt.abort();
      }),
    ),
  );
  o.signal.throwIfAborted();
  if (failure) throw failure;
}
