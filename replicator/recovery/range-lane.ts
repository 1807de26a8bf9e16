// One lane of a point read: fetches block ranges, decrypts and checks each record, writes it in place.
import { DrError, errorMessage, isDrError, systemCode } from '../../core/errors.js';
import { openBlock, readRecordHeader } from '../crypto/block-cipher.js';
import { MAC_BYTES, type VolumeKeys } from '../crypto/volume-key.js';
import type { GatewayClient } from '../transport/gateway-client.js';
import { fetchRecordsInto } from '../transport/record-fetch.js';
import { frameAt } from '../transport/record-framer.js';
import { imageWriter } from './image-writer.js';

/** What a lane reads: one volume of one point, and where its blocks go. */
export interface LaneJob {
  app: string;
  volume: string;
  volumeId: number;
  point: number;
  /** Blocks in the volume: a record beyond is a problem, not a write. */
  blocks: number;
  /** Only records of batches after this one (see ReadPointOptions.since). */
  since?: number | undefined;
  /** The image's file descriptor; undefined reads and checks only (verify). */
  fd?: number | undefined;
  /** The image opened O_DIRECT too (image-writer.ts): whole pages are written through it. */
  directFd?: number | undefined;
  /** Write zero blocks too (an image brought up to date), instead of leaving them as holes. */
  writeZeros?: boolean;
  /** Tries in a row that bring no record before a range cut off midway is given up (3). */
  retries?: number;
  /**
   * The MAC each block must have at this point (16 bytes a block): a record with another is a
   * problem and is not written. An on-demand volume serves blocks before the digest can be
   * checked, so it checks each one against the MACs the digest vouched for.
   */
  macs?: Uint8Array | undefined;
  /**
   * Finish a range's writes before asking for the next, so `nextRange(done)` means its blocks are
   * on disk (an on-demand volume then serves them).
   */
  settleRanges?: boolean;
}

/** A range of blocks [from, to). */
export interface BlockRange {
  from: number;
  to: number;
}

/** Gives a lane its next range (undefined: none left); `done` is the range it just completed. */
export type NextRange = (done?: BlockRange) => Promise<BlockRange | undefined>;

/** What a lane reports after each slab of records: blocks, their MACs (16 bytes each), bad ones. */
export interface LaneReport {
  blocks: Uint32Array;
  macs: Uint8Array;
  problems: Array<{ block: number; reason: string }>;
  /** Bytes of plaintext written for these blocks (once the lane has ended). */
  written: number;
  /** Bytes written through O_DIRECT since the lane's last report. */
  direct: number;
}

const HEAD = 16;
/** Room kept free in the slab for the next read; below it, whole records are opened first. */
const MIN_ROOM = 256 * 1024;
/** Writes pending before the connection pauses. */
const MAX_WRITES = 8;
/** Why a lane ended its own fetch: a bad block was found and the read stops. */
const STOPPED = Symbol('stopped');
/** Records are gathered into one reused slab this large (grown for a larger record). */
const SLAB_BYTES = 4 * 1024 * 1024;

/**
 * Runs ranges until `nextRange` has none left: TLS writes each range's records straight into one
 * reused slab (record-fetch.ts), where they are opened (authenticated, decrypted, checked against
 * their MAC) and written as runs of neighbouring blocks in one positioned writev each. A range cut
 * off midway is asked for again from its next block (see LaneJob.retries). `report` gets each
 * slab's outcome; the lane stops at its first bad block unless `collect` is set.
 */
export async function runLane(
  client: GatewayClient,
  keys: VolumeKeys,
  job: LaneJob,
  nextRange: NextRange,
  report: (r: LaneReport) => void,
  { collect = false, signal }: { collect?: boolean; signal?: AbortSignal | undefined } = {},
): Promise<void> {
  const writes = new Set<Promise<void>>();
  let failure: unknown;
  let stop = false;
  let slab: Buffer = Buffer.allocUnsafe(SLAB_BYTES);
  let used = 0;
  const writer =
    job.fd === undefined ? undefined : imageWriter({ fd: job.fd, directFd: job.directFd });
  let directReported = 0;
  const directSince = () => {
    const d = (writer?.directBytes ?? 0) - directReported;
    directReported += d;
    return d;
  };

  /** Opens the whole records at the slab's start; returns where the first incomplete one begins. */
  const openRecords = (): number => {
    const out: { block: number; plain: Buffer }[] = [];
    const blocks: number[] = [];
    const macs: Buffer[] = [];
    const problems: LaneReport['problems'] = [];
    let o = 0;
    while (!stop && used - o >= HEAD && used - o >= HEAD + slab.readUInt32BE(o + 12)) {
      const { block, seq, record, recordBlock } = frameAt(slab, o);
      o += HEAD + record.length;
      next = block + 1;
      if (block >= job.blocks) {
        problems.push({ block, reason: `block lies beyond the volume's size` });
        stop = !collect;
        continue;
      }
      try {
        const ctx = {
          app: job.app,
          volume: job.volume,
          volumeId: job.volumeId,
          block,
          seq,
          recordBlock,
        };
        const mac = readRecordHeader(record).mac;
        if (
          job.macs &&
          !mac.equals(job.macs.subarray(block * MAC_BYTES, (block + 1) * MAC_BYTES))
        ) {
          problems.push({
            block,
            reason: `${job.app}/${job.volume} block ${block} is not the one point ${job.point} committed`,
          });
          stop = !collect;
          continue;
        }
        const plain = openBlock(keys, ctx, record);
        blocks.push(block);
        macs.push(Buffer.from(mac)); // a view of the slab, which the next chunk overwrites
        if (job.fd !== undefined && (job.writeZeros || !mac.equals(keys.zeroMac))) {
          out.push({ block, plain });
        }
      } catch (err) {
        if (!isDrError(err, 'block_corrupt')) throw err;
        problems.push({ block, reason: errorMessage(err) });
        stop = !collect;
      }
    }
    const written = out.reduce((n, b) => n + b.plain.length, 0);
    report({
      blocks: Uint32Array.from(blocks),
      macs: Buffer.concat(macs),
      problems,
      written,
      direct: directSince(),
    });
    writeRuns(out);
    return o;
  };

  /** Neighbouring blocks go out in one positioned writev (block aligned), started at once. */
  const writeRuns = (out: { block: number; plain: Buffer }[]) => {
    if (writer === undefined) return;
    let i = 0;
    while (i < out.length) {
      const first = out[i] as { block: number; plain: Buffer };
      const bufs = [first.plain];
      let j = i + 1;
      while (j < out.length && (out[j] as { block: number }).block === first.block + (j - i)) {
        bufs.push((out[j] as { plain: Buffer }).plain);
        j++;
      }
      const p: Promise<void> = writer
        .write(bufs, first.block * keys.blockSize)
        .catch((err: unknown) => {
          failure ??= err;
        })
        .finally(() => writes.delete(p));
      writes.add(p);
      i = j;
    }
  };

  let next = 0;
  try {
    await lanes();
  } finally {
    // Never leave a write behind: the caller closes the file next.
    await Promise.allSettled(writes);
  }
  if (failure) throw failure;
  const direct = directSince();
  if (direct > 0)
    report({ blocks: new Uint32Array(0), macs: Buffer.alloc(0), problems: [], written: 0, direct });

  /**
   * Fetches one range into the slab: TLS writes the plaintext straight into its free room, and
   * whole records are opened whenever less than MIN_ROOM is left. Too many writes pending pause
   * the connection until they drain.
   */
  async function fetchRange(range: { from: number; to: number }): Promise<void> {
    let paused = false;
    const fetch = fetchRecordsInto(
      client,
      { app: job.app, point: job.point, volume: job.volume, since: job.since, range },
      {
        space: () => {
          if (slab.length - used < MIN_ROOM) {
            try {
              const done = openRecords();
              slab.copyWithin(0, done, used);
              used -= done;
              if (slab.length - used < MIN_ROOM) slab = grow(slab); // a record larger than the slab
            } catch (err) {
              fetch.abort(err);
            }
          }
          return slab.subarray(used);
        },
        landed: (n) => {
          used += n;
          if (failure || stop) {
            fetch.abort(failure ?? STOPPED);
            return false;
          }
          if (writes.size <= MAX_WRITES) return true;
          paused = true;
          void Promise.race(writes).then(function drained(): void {
            if (writes.size > MAX_WRITES / 2) {
              void Promise.race(writes).then(drained);
              return;
            }
            paused = false;
            fetch.resume();
          });
          return false;
        },
      },
    );
    const onAbort = () => fetch.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort);
    if (signal?.aborted) onAbort();
    try {
      await fetch.done;
    } catch (err) {
      if (err !== STOPPED) throw err;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      if (paused) fetch.abort(STOPPED); // ended meanwhile: nothing to resume
    }
  }

  async function lanes(): Promise<void> {
    let done: BlockRange | undefined;
    for (let range = await nextRange(); range && !stop; range = await nextRange(done)) {
      done = undefined;
      next = range.from;
      // A try that brought records in resets the count: only tries in a row that bring
      // nothing give up.
      for (let failed = 0; next < range.to && !stop; ) {
        signal?.throwIfAborted();
        used = 0;
        const from = next;
        try {
          await fetchRange({ from, to: range.to });
          if (stop) break;
          if (openRecords() !== used) throw cutShort(job);
          break; // the range is complete
        } catch (err) {
          if (stop) break;
          if (!isDrError(err, 'gateway_unreachable')) throw err;
          signal?.throwIfAborted();
          // Records opened before the cut stay done; the rest of the range is asked for again.
          openRecords();
          failed = next > from ? 0 : failed + 1;
          if (failed > (job.retries ?? 3)) throw err;
        }
      }
      if (job.settleRanges && !stop) {
        await Promise.allSettled(writes);
        if (failure) throw failure;
        done = range;
      }
    }
  }
}

function cutShort(job: LaneJob): DrError {
  return new DrError(
    `the gateway's record stream for ${job.app}/${job.volume} ends inside a record`,
    {
      code: 'gateway_unreachable',
      subject: `${job.app}/${job.volume}`,
      remedy: 'run the command again; check the gateway log if it repeats',
    },
  );
}

function grow(slab: Buffer): Buffer {
  const bigger = Buffer.allocUnsafe(slab.length * 2);
  slab.copy(bigger);
  return bigger;
}

/** A lane's error as data (for a worker to post), and back; `sys` keeps a system error's code (ENOSPC). */
export function errorData(err: unknown): {
  message: string;
  code?: string;
  subject?: string;
  sys?: string;
} {
  if (err instanceof DrError) {
    return {
      message: err.message,
      code: err.code,
      ...(err.subject ? { subject: err.subject } : {}),
    };
  }
  const sys = systemCode(err);
  return { message: errorMessage(err), ...(sys ? { sys } : {}) };
}
