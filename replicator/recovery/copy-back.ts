import { constants } from 'node:fs';
import { type FileHandle, open, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { DrError, errorMessage, systemCode } from '../../core/errors.js';
import { blockMac } from '../crypto/volume-key.js';

export interface CopyBackOptions {
  /** Volume name, for errors and progress. */
  volume: string;
  /** The recovered server's image: the data that wins. */
  from: string;
  /** The original volume (image file or block device), at least `size` bytes. */
  to: string;
  size: number;
  blockSize: number;
  /** The volume's keyed MAC key: blocks are compared by MAC, as the agent and gateway do. */
  macKey: Buffer;
  /** fsync the original at the end (the final pass). */
  durable?: boolean;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
  /** How long a block device the kernel refuses exclusively (EBUSY) is asked again (30 s). */
  busyWaitMs?: number;
}

export interface CopyBackResult {
  blocks: number;
  blocksSent: number;
  bytesSent: number;
}

/** Bytes read from each side per step: a few MiB keeps syscalls few and memory small. */
const CHUNK = 4 * 1024 * 1024;

/**
 * Makes `to` equal to `from`, writing only the blocks whose keyed MAC differs: after a failover
 * the original's blocks are mostly still right, so most of a failback is reading, not sending.
 * Idempotent: a second pass over the same data sends nothing.
 */
export async function copyBack({
  volume,
  from,
  to,
  size,
  blockSize,
  macKey,
  durable = false,
  signal,
  onProgress,
  busyWaitMs = EXCL_WAIT_MS,
}: CopyBackOptions): Promise<CopyBackResult> {
  const src = await openSide(from, 'r', volume, 'recovered image');
  let dst: FileHandle | undefined;
  try {
    dst = await openSide(to, 'r+', volume, 'original volume', busyWaitMs);
    const chunk = Math.max(blockSize, Math.floor(CHUNK / blockSize) * blockSize);
    const a = Buffer.allocUnsafe(chunk);
    const b = Buffer.allocUnsafe(chunk);
    const blocks = Math.ceil(size / blockSize);
    let blocksSent = 0;
    let bytesSent = 0;
    for (let at = 0; at < size; at += chunk) {
      signal?.throwIfAborted();
      const len = Math.min(chunk, size - at);
      const [ra, rb] = await Promise.all([readFull(src, a, len, at), readFull(dst, b, len, at)]);
      if (ra < len) {
        throw new DrError(`the recovered image of ${volume} ended at ${at + ra} of ${size} bytes`, {
          code: 'volume_unreadable',
          subject: from,
          remedy: 'the image was truncated; fail over again from a recovery point',
        });
      }
      b.fill(0, rb, len); // an original shorter than the image reads as zeros there
      // Differing neighbours are written in one call.
      let runStart = -1;
      const flush = async (end: number) => {
        if (runStart < 0) return;
        await writeFull(dst as FileHandle, a.subarray(runStart, end), at + runStart);
        runStart = -1;
      };
      for (let o = 0; o < len; o += blockSize) {
        const end = Math.min(len, o + blockSize);
        const same = blockMac(macKey, a.subarray(o, end)).equals(
          blockMac(macKey, b.subarray(o, end)),
        );
        if (same) {
          await flush(o);
          continue;
        }
        if (runStart < 0) runStart = o;
        blocksSent++;
        bytesSent += end - o;
      }
      await flush(len);
      onProgress?.(Math.min(blocks, Math.ceil((at + len) / blockSize)), blocks);
    }
    if (durable) await dst.sync();
    return { blocks, blocksSent, bytesSent };
  } finally {
    await dst?.close();
    await src.close();
  }
}

/** How long an exclusive open refused with EBUSY is tried again, and how often. */
const EXCL_WAIT_MS = 30_000;
const EXCL_RETRY_MS = 250;

async function openSide(
  path: string,
  flags: 'r' | 'r+',
  volume: string,
  what: string,
  busyWaitMs = 0,
): Promise<FileHandle> {
  try {
    // A block device is opened exclusively: the kernel refuses (EBUSY) while it is mounted or
    // held, and nothing can mount it while the copy runs.
    const device = flags === 'r+' && (await stat(path).catch(() => undefined))?.isBlockDevice();
    if (!device) return await open(path, flags);
    // The caller found no mount, holder or process on it: a refusal now is a passing claim (a
    // probe, an unmount finishing), so it is asked again for a while before failback gives up.
    for (let waited = 0; ; waited += EXCL_RETRY_MS) {
      try {
        return await open(path, constants.O_RDWR | constants.O_EXCL);
      } catch (err) {
        if (systemCode(err) !== 'EBUSY' || waited >= busyWaitMs) throw err;
        await sleep(EXCL_RETRY_MS);
      }
    }
  } catch (err) {
    if (systemCode(err) === 'EBUSY') {
      throw new DrError(
        `the ${what} of ${volume} at ${path} is in use (the kernel refused it exclusively${busyWaitMs ? ` for ${busyWaitMs / 1000} s` : ''}: mounted or held), so failback wrote nothing to it`,
        {
          code: 'volume_in_use',
          subject: path,
          remedy:
            "run the app's fence command, or unmount it and stop what holds it, then run failback again",
          cause: err,
        },
      );
    }
    throw new DrError(`cannot open the ${what} of ${volume} at ${path}: ${errorMessage(err)}`, {
      code: 'volume_unreadable',
      subject: path,
      remedy:
        flags === 'r+'
          ? 'make the original volume writable by the worker (and stop anything holding it)'
          : 'the recovered server is gone; fail over again from a recovery point',
      cause: err,
    });
  }
}

async function readFull(fh: FileHandle, buf: Buffer, len: number, at: number): Promise<number> {
  let got = 0;
  while (got < len) {
    const { bytesRead } = await fh.read(buf, got, len - got, at + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got;
}

async function writeFull(fh: FileHandle, buf: Buffer, at: number): Promise<void> {
  let put = 0;
  while (put < buf.length) {
    const { bytesWritten } = await fh.write(buf, put, buf.length - put, at + put);
    put += bytesWritten;
  }
}
