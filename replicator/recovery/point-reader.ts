import { DrError, errorMessage, isDrError } from '../../core/errors.js';
import { openBlock, readRecordHeader } from '../crypto/block-cipher.js';
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
import { requireSignedRecord } from './point-check.js';

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
   * Receives each authenticated block (zero blocks included, `zero` true for them, known from the
   * record's MAC without a look at the bytes); restore writes them, verify does not.
   */
  onBlock?: (block: number, plain: Buffer, zero: boolean) => Promise<void> | void;
  /** Keep going after a bad block (verify) instead of stopping at the first (restore). */
  collectProblems?: boolean;
  onProgress?: (blocksDone: number, blocksTotal: number) => void;
  /**
   * Read only the records after this batch (an earlier point's seqTo), starting from that
   * point's block MACs (`baseMacs`): the digest then checks the earlier point's blocks too.
   */
  since?: { seq: number; baseMacs: Buffer };
  /** Stops the read (with the signal's reason) between two blocks. */
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
}

/**
 * Streams one volume of a point from the gateway, authenticating and
 * decrypting every block and checking it against its keyed MAC, then checks
 * the whole volume against the digest the agent committed. Nothing reaches
 * `onBlock` unless it authenticated.
 */
export async function readPointVolume({
  client,
  kek,
  app,
  point,
  volume,
  onBlock,
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
  signal?.throwIfAborted();
  for await (const { block, seq, record, recordBlock } of client.records(
    app,
    point.id,
    volume,
    since?.seq,
  )) {
    signal?.throwIfAborted();
    if (block >= blocks) {
      problems.push({ volume, block, reason: `block lies beyond the volume's size ${size}` });
      if (!collectProblems) break;
      continue;
    }
    try {
      const plain = openBlock(
        keys,
        { app, volume, volumeId: info.id, block, seq, recordBlock },
        record,
      );
      // openBlock checked the plaintext against the record's MAC: reuse it for the digest.
      const mac = readRecordHeader(record).mac;
      mac.copy(macs, block * MAC_BYTES);
      await onBlock?.(block, plain, mac.equals(keys.zeroMac));
    } catch (err) {
      if (!isDrError(err, 'block_corrupt')) throw err;
      problems.push({ volume, block, reason: errorMessage(err) });
      // The digest must not pass for a block we could not read.
      macs.fill(0xff, block * MAC_BYTES, block * MAC_BYTES + MAC_BYTES);
      if (!collectProblems) break;
    }
    onProgress?.(++done, blocks);
  }
  const digestOk =
    problems.length === 0 && volumeDigest(keys.mac, size, macs).toString('hex') === pv.digest;
  return { info, size, blocks, problems, digestOk, macs };
}
