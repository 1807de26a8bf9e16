import type { ResourceLimits } from 'node:worker_threads';
import { DrError } from '../../core/errors.js';
import type { KeyEncryptionKey } from '../crypto/key-encryption-key.js';
import {
  blockMac,
  MAC_BYTES,
  type VolumeKeys,
  volumeDigest,
  volumeKeysOf,
} from '../crypto/volume-key.js';
import type { GatewayClient } from '../transport/gateway-client.js';
import type { PointDetail, VolumeInfo } from '../transport/wire-types.js';
import { runLanes } from './lane-pool.js';
import { requireSignedRecord } from './point-check.js';
import type { LaneJob, LaneReport } from './range-lane.js';
import { defaultParallelism, type ReadParallelism, rangesOf } from './read-parallelism.js';

export interface BlockProblem {
  volume: string;
  block: number;
  reason: string;
}

export interface ReadPointOptions {
  client: GatewayClient;
  kek: KeyEncryptionKey;
  app: string;
  point: PointDetail;
  volume: string;
  /**
   * Where authenticated blocks are written, each at its place: an image's file descriptor, with
   * zero blocks written too (`zeros`) or left as holes. Without it blocks are only checked (verify).
   */
  write?: { fd: number; zeros: boolean; directFd?: number | undefined };
  /** Ranges fetched at once and the worker threads that open them; the machine's default unless set. */
  parallel?: ReadParallelism;
  /** Heap limits of each worker thread. */
  workerLimits?: ResourceLimits;
  /** Keep going after a bad block (verify) instead of stopping at the first (restore). */
  collectProblems?: boolean;
  onProgress?: (blocksDone: number, blocksTotal: number) => void;
  /**
   * Read only the records after this batch (an earlier point's seqTo), starting from that
   * point's block MACs (`baseMacs`): the digest then checks the earlier point's blocks too.
   */
  since?: { seq: number; baseMacs: Buffer };
  /** Stops the read (with the signal's reason); writes already started finish first. */
  signal?: AbortSignal | undefined;
}

export interface ReadPointResult {
  info: VolumeInfo;
  size: number;
  blocks: number;
  problems: BlockProblem[];
  /** Whether the keyed digest over every block MAC matched the one the agent committed. */
  digestOk: boolean;
  /** The MAC of every block at the point, in block order (16 bytes each). */
  macs: Buffer;
  /** Records fetched and opened. */
  records: number;
  /** Bytes of plaintext written (with `write`). */
  bytesWritten: number;
  /** Of those, bytes written through O_DIRECT (with `write.directFd`). */
  bytesDirect: number;
}

/**
 * Streams one volume of a point from the gateway, authenticating and decrypting every block and
 * checking it against its keyed MAC, then checks the whole volume against the digest the agent
 * committed. Nothing is written unless it authenticated. The volume is fetched as ranges of
 * blocks, several at once when `parallel` says so, on worker threads when it names some; blocks
 * arrive in any order and each lands at its own place.
 */
export async function readPointVolume({
  client,
  kek,
  app,
  point,
  volume,
  write,
  parallel = defaultParallelism(),
  workerLimits,
  collectProblems = false,
  onProgress,
  since,
  signal,
}: ReadPointOptions): Promise<ReadPointResult> {
  const info = point.volumeInfo.find((v) => v.name === volume);
  const pv = point.volumes[volume];
  if (!info || !pv) {
    throw new DrError(`point ${point.id} of ${app} has no volume ${JSON.stringify(volume)}`, {
      code: 'point_unknown',
      subject: volume,
      remedy: `use one of: ${Object.keys(point.volumes).join(', ')}`,
    });
  }
  // The digest below is only as good as the record that vouches for it.
  requireSignedRecord(kek, app, point);
  const keys: VolumeKeys = volumeKeysOf(kek, app, info);
  const size = pv.size;
  const blocks = Math.ceil(size / info.blockSize);
  const macs = Buffer.allocUnsafe(blocks * MAC_BYTES);
  if (since && since.baseMacs.length === macs.length) since.baseMacs.copy(macs);
  else {
    for (let b = 0; b < blocks; b++) {
      const len = Math.min(info.blockSize, size - b * info.blockSize);
      (len === info.blockSize ? keys.zeroMac : blockMac(keys.mac, Buffer.alloc(len))).copy(
        macs,
        b * MAC_BYTES,
      );
    }
  }
  const problems: BlockProblem[] = [];
  let done = 0;
  let bytesWritten = 0;
  let bytesDirect = 0;
  signal?.throwIfAborted();
  // Every lane stops at the first bad block (unless collecting), at an error, or on `signal`.
  const halt = new AbortController();
  const stopped = signal ? AbortSignal.any([signal, halt.signal]) : halt.signal;
  const report = (r: LaneReport) => {
    r.blocks.forEach((block, i) => {
      macs.set(r.macs.subarray(i * MAC_BYTES, (i + 1) * MAC_BYTES), block * MAC_BYTES);
    });
    for (const p of r.problems) {
      problems.push({ volume, ...p });
      // The digest must not pass for a block we could not read.
      if (p.block < blocks) macs.fill(0xff, p.block * MAC_BYTES, (p.block + 1) * MAC_BYTES);
    }
    done += r.blocks.length + r.problems.length;
    bytesWritten += r.written;
    bytesDirect += r.direct;
    if (r.problems.length > 0 && !collectProblems) halt.abort();
    onProgress?.(done, blocks);
  };
  const job: LaneJob = {
    app,
    volume,
    volumeId: info.id,
    point: point.id,
    blocks,
    since: since?.seq,
    ...(write ? { fd: write.fd, directFd: write.directFd, writeZeros: write.zeros } : {}),
  };
  const ranges = rangesOf(blocks, parallel.ranges);
  let k = 0;
  const nextRange = () => ranges[k++];
  try {
    await runLanes({
      client,
      keys,
      job,
      parallel,
      collect: collectProblems,
      nextRange,
      report,
      signal: stopped,
      resourceLimits: workerLimits,
    });
  } catch (err) {
    // Stopped by the first bad block: that block is the news, not the lanes' abort.
    if (!(halt.signal.aborted && problems.length > 0 && !signal?.aborted)) throw err;
  }
  signal?.throwIfAborted();
  const digestOk =
    problems.length === 0 && volumeDigest(keys.mac, size, macs).toString('hex') === pv.digest;
  return {
    info,
    size,
    blocks,
    problems,
    digestOk,
    macs,
    records: done,
    bytesWritten,
    bytesDirect,
  };
}
