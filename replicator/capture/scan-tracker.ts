import { blockMac } from '../crypto/volume-key.js';
import type { VolumeFile } from './volume-file.js';

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
}

/**
 * The scan tracker: reads the whole volume, computes each block's keyed MAC
 * and yields the blocks whose MAC differs from the one the DR site holds.
 * It needs nothing from the kernel; it is the initial sync, the resync, and
 * the fallback where block tracing is not available.
 */
export async function* scanChanges({
  volume,
  size,
  blockSize,
  macKey,
  known,
  readBytes = 4 * 1024 * 1024,
  onProgress,
}: ScanOptions): AsyncGenerator<ChangedBlock> {
  const chunk = Math.max(blockSize, readBytes - (readBytes % blockSize));
  // Two buffers: the next read runs in the thread pool while this chunk is hashed.
  const buffers = [volume.allocBuffer(chunk), volume.allocBuffer(chunk)] as const;
  const readAt = async (pos: number, buf: Buffer): Promise<number> => {
    const want = Math.min(chunk, size - pos);
    const got = await volume.read(buf, pos, want);
    if (got < want) buf.fill(0, got, want); // the volume shrank under us: the size check on the next cycle reports it
    return want;
  };
  let next = size > 0 ? readAt(0, buffers[0]) : undefined;
  for (let pos = 0, turn = 0; pos < size; pos += chunk, turn ^= 1) {
    const want = await (next as Promise<number>);
    const buf = buffers[turn as 0 | 1];
    next = pos + chunk < size ? readAt(pos + chunk, buffers[(turn ^ 1) as 0 | 1]) : undefined;
    for (let off = 0; off < want; off += blockSize) {
      const block = (pos + off) / blockSize;
      const plain = buf.subarray(off, Math.min(off + blockSize, want));
      const mac = blockMac(macKey, plain);
      if (!mac.equals(known.subarray(block * 16, block * 16 + 16))) {
        yield { block, plain, mac };
      }
    }
    onProgress?.(pos + want);
  }
}
