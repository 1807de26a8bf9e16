/**
 * What a volume's block size costs its writes: the bytes the writes covered against the bytes of
 * the blocks they dirtied, at the volume's block size and at the smaller sizes advice may point to.
 */

/** Block sizes counted besides the volume's own: the ones `dr status` may advise. */
export const COMPARED_BLOCK_SIZES: readonly number[] = [4096, 16384];

/** The tally of a stretch of writes. */
export interface WriteSample {
  /** Bytes the writes covered. */
  writtenBytes: number;
  /** Bytes of the blocks they dirtied, per block size, ascending by block size. */
  dirtied: { blockSize: number; bytes: number }[];
}

/**
 * Counts each write from its span alone (no bitmap): a rewrite of one block counts again on both
 * sides, so the ratio is the block bytes per written byte, not what one cycle ships (a block
 * written twice between two cycles is shipped once). Bounded memory, nothing allocated per write.
 */
export class WriteTally {
  /** Block sizes counted: the volume's and COMPARED_BLOCK_SIZES, ascending, each once. */
  readonly blockSizes: readonly number[];
  private written = 0;
  private readonly dirtied: Float64Array;

  constructor(blockSize: number) {
    this.blockSizes = [...new Set([...COMPARED_BLOCK_SIZES, blockSize])].sort((a, b) => a - b);
    this.dirtied = new Float64Array(this.blockSizes.length);
  }

  /** One write of `count` 512-byte sectors from `sector` (the units of a block trace line). */
  addSectors(sector: number, count: number): void {
    if (count <= 0) return;
    const start = sector * 512;
    const end = start + count * 512;
    this.written += end - start;
    const sizes = this.blockSizes;
    for (let i = 0; i < sizes.length; i++) {
      const s = sizes[i] as number;
      const blocks = Math.floor((end - 1) / s) - Math.floor(start / s) + 1;
      this.dirtied[i] = (this.dirtied[i] as number) + blocks * s;
    }
  }

  /** The tally since the last take; starts a new one. */
  take(): WriteSample {
    const sample: WriteSample = {
      writtenBytes: this.written,
      dirtied: this.blockSizes.map((blockSize, i) => ({
        blockSize,
        bytes: this.dirtied[i] as number,
      })),
    };
    this.written = 0;
    this.dirtied.fill(0);
    return sample;
  }
}
