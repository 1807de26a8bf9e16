/** How an on-demand volume fetches blocks: retried while the gateway is unreachable, each record checked against the point's MAC. */
import type { FileHandle } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { DrError, errorMessage, isDrError, systemCode } from '../../core/errors.js';
import { openBlock, readRecordHeader } from '../crypto/block-cipher.js';
import { blockMac, MAC_BYTES, type VolumeKeys, volumeDigest } from '../crypto/volume-key.js';
import type { GatewayClient } from '../transport/gateway-client.js';
import type { PointDetail, VolumeInfo } from '../transport/wire-types.js';
import { BlockRuns, matchingBlocks, writeZeros } from './volume-file.js';

/** What a fetch needs of its volume: where to fetch from, its keys, and the MACs the point vouches for. */
export interface FetchSource {
  client: GatewayClient;
  app: string;
  point: PointDetail;
  volume: string;
  keys: VolumeKeys;
  info: VolumeInfo;
  /** The MAC every block must have at this point (authenticated through the point's digest). */
  macs: Buffer;
  /** Blocks in the volume. */
  blocks: number;
}

/**
 * Fetches the records of blocks [from, to), each authenticated against the point's MAC for it,
 * and hands each block's plaintext (a fresh buffer) to `onBlock` as it arrives. The one place a
 * recovery served on demand looks a block's record up.
 */
export async function fetchVerifiedBlocks(
  s: FetchSource,
  from: number,
  to: number,
  onBlock: (block: number, plain: Buffer) => Promise<void> | void,
): Promise<void> {
  const { client, app, point, volume } = s;
  for await (const { block, seq, record, recordBlock } of client.records(
    app,
    point.id,
    volume,
    undefined,
    { from, to },
  )) {
    if (block < from || block >= to || block >= s.blocks) continue;
    const want = s.macs.subarray(block * MAC_BYTES, (block + 1) * MAC_BYTES);
    // openBlock checks the plaintext against the record's MAC; the MAC must be the point's.
    if (!readRecordHeader(record).mac.equals(want)) {
      throw new DrError(
        `block ${block} of ${app}/${volume} is not the one point ${point.id} committed`,
        {
          code: 'block_corrupt',
          subject: `${volume} block ${block}`,
          remedy: 'recover an older point, or run `dr verify` to list every damaged block',
        },
      );
    }
    const ctx = { app, volume, volumeId: s.info.id, block, seq, recordBlock };
    await onBlock(block, openBlock(s.keys, ctx, record));
  }
}

/** The MAC of every block of a point's volume, and which blocks the gateway holds a record for. */
export interface PointMacs {
  /** 16 bytes a block, in block order: a stored block's MAC, else that of a zero block. */
  macs: Buffer;
  /** 1 where the gateway holds a record for the block (the others are zeros). */
  stored: Uint8Array;
}

/**
 * Fetches a point's block MACs and checks them, holes counted as zero blocks, against the volume
 * digest the agent committed (`digest`): after this, a record is trusted only if its MAC is the
 * one here.
 */
export async function loadPointMacs(
  s: Pick<FetchSource, 'client' | 'app' | 'point' | 'volume' | 'keys' | 'blocks'> & {
    size: number;
    blockSize: number;
    digest: string;
  },
  retry: <T>(fn: () => Promise<T>) => Promise<T>,
): Promise<PointMacs> {
  const { client, app, point, volume, keys, blocks, size, blockSize } = s;
  const got = await retry(() => client.macs(app, point.id, volume));
  // Every block a zero block first (the pattern repeats), the last one at its own length.
  const macs = Buffer.allocUnsafe(blocks * MAC_BYTES).fill(keys.zeroMac);
  const tail = size - (blocks - 1) * blockSize;
  if (blocks > 0 && tail !== blockSize) {
    blockMac(keys.mac, Buffer.alloc(tail)).copy(macs, (blocks - 1) * MAC_BYTES);
  }
  const stored = new Uint8Array(blocks);
  let beyond = false;
  for (const [b, mac] of got) {
    if (b >= blocks) beyond = true;
    else {
      mac.copy(macs, b * MAC_BYTES);
      stored[b] = 1;
    }
  }
  if (beyond || volumeDigest(keys.mac, size, macs).toString('hex') !== s.digest) {
    throw new DrError(
      `${app}/${volume} at point ${point.id}: the gateway's block list does not match the digest its agent committed`,
      {
        code: 'store_corrupt',
        subject: `${app}/${volume}@${point.id}`,
        remedy: 'recover an older point; check the gateway store for tampering',
      },
    );
  }
  return { macs, stored };
}

/** The error for a stored block of `s.volume` the gateway did not send when asked for it. */
export function missingRecord(s: Pick<FetchSource, 'app' | 'point' | 'volume'>, block: number) {
  return new DrError(
    `the gateway sent no record for block ${block} of ${s.app}/${s.volume} at point ${s.point.id}`,
    {
      code: 'store_corrupt',
      subject: `${s.volume} block ${block}`,
      remedy: 'recover an older point, or run `dr verify` to list every damaged block',
    },
  );
}

/** Retries a gateway that cannot be reached, with backoff, for `retryForMs`; other errors at once. */
export async function withGatewayRetry<T>(
  fn: () => Promise<T>,
  retryForMs: number,
  closed: () => boolean,
  onRetry: () => void,
  /** Whether the try that failed got some work done: the wait starts over (a long hydration). */
  progressed?: () => boolean,
): Promise<T> {
  let until = Date.now() + retryForMs;
  let wait = 100;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (progressed?.()) {
        until = Date.now() + retryForMs;
        wait = 100;
      }
      if (!isDrError(err, 'gateway_unreachable') || Date.now() + wait > until || closed())
        throw err;
      onRetry();
      await sleep(wait);
      wait = Math.min(wait * 2, 5000);
    }
  }
}

/** The error a fetch that failed for good fails the volume (at `path`, named `name`) with. */
export function volumeFailure(err: unknown, path: string, name: string): DrError {
  // A worker thread's write error comes back as a DrError whose cause keeps the system code.
  const full = [err, err instanceof Error ? err.cause : undefined].some(
    (e) => systemCode(e) === 'ENOSPC',
  );
  return isDrError(err) && !full
    ? err
    : full
      ? new DrError(`the DR disk is full: ${path} cannot take block data of ${name}`, {
          code: 'provider_failed',
          subject: path,
          remedy:
            'free space under DR_HOME/recovery (or move it to a larger disk), then recover again',
          cause: err,
        })
      : new DrError(`${name}: ${errorMessage(err)}`, {
          code: 'provider_failed',
          subject: name,
          remedy: 'see the worker log; recover again',
          cause: err,
        });
}

/** What a reader's fetch of whole chunks needs of its volume. */
export interface ChunkFetch extends FetchSource {
  /** The local copy. */
  fh: FileHandle;
  size: number;
  chunkBlocks: number;
  /** 1 where the gateway holds a record for a block. */
  stored: Uint8Array;
  /** The copy is one an earlier attempt left: a block counts only where its MAC is the point's. */
  verifyLocal: boolean;
  retry: <T>(fn: () => Promise<T>) => Promise<T>;
}

/**
 * Makes `chunks` (ascending, claimed by the caller) right in the local copy: their stored blocks
 * fetched in one request, each checked against the point's MAC, and written in runs.
 */
export async function fetchChunks(s: ChunkFetch, chunks: readonly number[]): Promise<void> {
  const need = new Set<number>();
  for (const c of chunks) {
    const end = Math.min(s.blocks, (c + 1) * s.chunkBlocks);
    for (let b = c * s.chunkBlocks; b < end; b++) need.add(b);
  }
  if (s.verifyLocal) {
    // A block an earlier attempt left counts only when its MAC is the point's.
    const check = { blockSize: s.info.blockSize, size: s.size, macKey: s.keys.mac };
    for (const c of chunks) {
      const range = {
        from: c * s.chunkBlocks,
        to: Math.min(s.blocks, (c + 1) * s.chunkBlocks),
      };
      const ok = await matchingBlocks(s.fh, { ...check, ...range, macs: s.macs });
      for (const b of ok) need.delete(b);
    }
  }
  let first = -1;
  let last = -1;
  for (const b of need) {
    if (!s.stored[b]) continue;
    if (first < 0) first = b;
    last = b;
  }
  if (first >= 0) {
    const runs = new BlockRuns(s.fh, s.info.blockSize);
    // Only the claimed blocks are written (another may be local already, with the server's
    // writes); a zero block needs no write in a fresh file, where it is a hole already.
    const keep = (b: number, plain: Buffer) =>
      need.delete(b) && (s.verifyLocal || !isZeroMac(s, b)) ? runs.add(b, plain) : undefined;
    await s.retry(() => fetchVerifiedBlocks(s, first, last + 1, keep));
    await runs.flush();
  }
  // What is left must be a zero block (no record); a stored block the gateway did not send is an error.
  for (const b of need) if (s.stored[b]) throw missingRecord(s, b);
  // In a fresh file a block never written since it was truncated is zeros already.
  if (need.size > 0 && s.verifyLocal) {
    await writeZeros(s.fh, [...need], s.info.blockSize, (b) =>
      Math.min(s.info.blockSize, s.size - b * s.info.blockSize),
    );
  }
}

function isZeroMac(s: ChunkFetch, block: number): boolean {
  return s.macs.subarray(block * MAC_BYTES, (block + 1) * MAC_BYTES).equals(s.keys.zeroMac);
}
