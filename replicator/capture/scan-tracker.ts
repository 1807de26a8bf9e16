import { blockMac } from '../crypto/volume-key.js';
import type { VolumeFile } from './volume-file.js';
import type { ByteRanges } from './zero-ranges.js';

/** A block whose content differs from what the DR site holds. */
export interface ChangedBlock {
  block: number;
  /** Valid only until the generator is resumed: the read buffer is reused. */
  plain: Buffer;
  mac: Buffer;
}

export interface ScanOptions {
  volume: VolumeFile;
  size: number;
  blockSize: number;
  macKey: Buffer;
  /** MAC of each block as the DR site holds it (16 bytes per block). */
  known: Buffer;
  /** Bytes read per system call; a multiple of the block size. */
  readBytes?: number;
  /** Called after each read with the bytes scanned so far. */
  onProgress?: (scanned: number) => void;
  /**
   * Ranges known to hold no data (holes, free space), asked for when the scan starts, after the
   * tracker: a block wholly inside one is a zero block, compared without being read.
   */
  zeroRanges?: () => Promise<ByteRanges>;
}

/** A stretch of whole blocks [first, last]: read, or known to be zeros. */
interface Segment {
  first: number;
  last: number;
  zero: boolean;
}

/**
 * The volume's blocks in order as segments of at most `maxBlocks`: runs of blocks wholly inside
 * `zeros` are zero segments, the rest are read. The last block, when partial, is always read.
 */
export function* segmentsOf(
  size: number,
  blockSize: number,
  zeros: ByteRanges,
  maxBlocks: number,
): Generator<Segment> {
  const total = Math.ceil(size / blockSize);
  const whole = Math.floor(size / blockSize);
  let z = 0;
  let b = 0;
  while (b < total) {
    // The next range holding a whole block at or after b; ranges inside one block are read.
    let zFirst = total;
    let zEnd = total;
    while (z < zeros.length) {
      const [start, end] = zeros[z] as [number, number];
      zFirst = Math.max(Math.ceil(start / blockSize), b);
      zEnd = Math.min(Math.floor(end / blockSize), whole);
      if (zEnd > zFirst) break;
      z++;
      zFirst = total;
      zEnd = total;
    }
    if (z < zeros.length && zFirst === b) {
      const last = Math.min(zEnd - 1, b + maxBlocks - 1);
      yield { first: b, last, zero: true };
      b = last + 1;
      continue;
    }
    const last = Math.min(zFirst - 1, b + maxBlocks - 1);
    yield { first: b, last, zero: false };
    b = last + 1;
  }
}

/**
 * The scan tracker: reads the whole volume, computes each block's keyed MAC
 * and yields the blocks whose MAC differs from the one the DR site holds.
 * It needs nothing from the kernel; it is the initial sync, the resync, and
 * the fallback where block tracing is not available. Blocks inside
 * `zeroRanges` are not read: their MAC is that of a zero block, computed once,
 * so the cost follows the data, not the disk.
 */
export async function* scanChanges({
  volume,
  size,
  blockSize,
  macKey,
  known,
  readBytes = 4 * 1024 * 1024,
  onProgress,
  zeroRanges,
}: ScanOptions): AsyncGenerator<ChangedBlock> {
  const chunk = Math.max(blockSize, readBytes - (readBytes % blockSize));
  const zeros = zeroRanges ? await zeroRanges() : [];
  const zeroBlock = Buffer.alloc(blockSize);
  const zeroMac = blockMac(macKey, zeroBlock);
  const segments = segmentsOf(size, blockSize, zeros, chunk / blockSize);
  // Two buffers: the next read runs in the thread pool while this chunk is hashed.
  const buffers = [volume.allocBuffer(chunk), volume.allocBuffer(chunk)] as const;
  let turn = 0;
  const start = (seg: Segment | undefined) => {
    if (!seg) return undefined;
    if (seg.zero) return Promise.resolve({ seg, buf: zeroBlock, want: 0 });
    const buf = buffers[turn as 0 | 1];
    turn ^= 1;
    const pos = seg.first * blockSize;
    const want = Math.min((seg.last + 1) * blockSize, size) - pos;
    return volume.read(buf, pos, want).then((got) => {
      if (got < want) buf.fill(0, got, want); // the volume shrank under us: the size check on the next cycle reports it
      return { seg, buf, want };
    });
  };
  let next = start(segments.next().value ?? undefined);
  while (next) {
    const { seg, buf, want } = await next;
    next = start(segments.next().value ?? undefined);
    if (seg.zero) {
      for (let block = seg.first; block <= seg.last; block++) {
        if (!zeroMac.equals(known.subarray(block * 16, block * 16 + 16)))
          yield { block, plain: zeroBlock, mac: zeroMac };
      }
    } else {
      for (let off = 0; off < want; off += blockSize) {
        const block = seg.first + off / blockSize;
        const plain = buf.subarray(off, Math.min(off + blockSize, want));
        const mac = blockMac(macKey, plain);
        if (!mac.equals(known.subarray(block * 16, block * 16 + 16))) {
          yield { block, plain, mac };
        }
      }
    }
    onProgress?.(Math.min((seg.last + 1) * blockSize, size));
  }
}
