import { blockMac } from '../crypto/volume-key.js';
import type { ChangedBlock } from './scan-tracker.js';
import type { VolumeFile } from './volume-file.js';

export interface ReadBlocksOptions {
  volume: VolumeFile;
  size: number;
  blockSize: number;
  macKey: Buffer;
  /** MAC of each block as the DR site holds it (16 bytes per block). */
  known: Buffer;
  /** Blocks a tracker reported written, ascending. */
  blocks: readonly number[];
  /** Most blocks read in one call, for runs of neighbours. */
  runBlocks?: number;
}

/**
 * Reads only the blocks a change tracker reported and yields those whose
 * content differs from what the DR site holds (a block written back to its
 * old content, or written twice, costs a read and nothing more). Runs of
 * neighbouring blocks are read in one call.
 */
export async function* readChangedBlocks({
  volume,
  size,
  blockSize,
  macKey,
  known,
  blocks,
  runBlocks = 64,
}: ReadBlocksOptions): AsyncGenerator<ChangedBlock> {
  const total = Math.ceil(size / blockSize);
  const buf = volume.allocBuffer(runBlocks * blockSize);
  let i = 0;
  while (i < blocks.length) {
    const first = blocks[i] as number;
    if (first >= total) break; // past the end: the size check reports a shrink
    let last = first;
    while (
      i + 1 < blocks.length &&
      (blocks[i + 1] as number) === last + 1 &&
      last + 1 < total &&
      last + 1 - first < runBlocks
    ) {
      last++;
      i++;
    }
    i++;
    const pos = first * blockSize;
    const want = Math.min((last + 1) * blockSize, size) - pos;
    const got = await volume.read(buf, pos, want);
    if (got < want) buf.fill(0, got, want);
    for (let b = first; b <= last; b++) {
      const off = (b - first) * blockSize;
      const plain = buf.subarray(off, Math.min(off + blockSize, want));
      const mac = blockMac(macKey, plain);
      if (!mac.equals(known.subarray(b * 16, b * 16 + 16))) yield { block: b, plain, mac };
    }
  }
}
