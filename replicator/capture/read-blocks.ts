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
  /** Reads in flight at once (the thread pool has four). */
  parallel?: number;
}

/** Runs of neighbouring blocks, each at most `max` long, within the volume. */
function runsOf(blocks: readonly number[], total: number, max: number): Array<[number, number]> {
  const runs: Array<[number, number]> = [];
  let i = 0;
  while (i < blocks.length) {
    const first = blocks[i] as number;
    if (first >= total) break; // past the end: the size check reports a shrink
    let last = first;
    while (
      i + 1 < blocks.length &&
      (blocks[i + 1] as number) === last + 1 &&
      last + 1 < total &&
      last + 1 - first < max
    ) {
      last++;
      i++;
    }
    i++;
    runs.push([first, last]);
  }
  return runs;
}

/**
 * Reads only the blocks a change tracker reported and yields those whose
 * content differs from what the DR site holds (a block written back to its
 * old content, or written twice, costs a read and nothing more). Runs of
 * neighbouring blocks are read in one call, several runs at once: inside a
 * freeze, this is most of the frozen time.
 */
export async function* readChangedBlocks({
  volume,
  size,
  blockSize,
  macKey,
  known,
  blocks,
  runBlocks = 64,
  parallel = 4,
}: ReadBlocksOptions): AsyncGenerator<ChangedBlock> {
  const total = Math.ceil(size / blockSize);
  const runs = runsOf(blocks, total, runBlocks);
  const buffers = Array.from({ length: parallel + 1 }, () =>
    volume.allocBuffer(runBlocks * blockSize),
  );
  const read = async (run: [number, number], buf: Buffer) => {
    const pos = run[0] * blockSize;
    const want = Math.min((run[1] + 1) * blockSize, size) - pos;
    const got = await volume.read(buf, pos, want);
    if (got < want) buf.fill(0, got, want);
    return { run, buf, want };
  };
  // A window of reads in flight; results are consumed in order, each buffer
  // reused only after its blocks were yielded (and sealed or copied).
  const inFlight: Array<Promise<{ run: [number, number]; buf: Buffer; want: number }>> = [];
  let next = 0;
  let turn = 0;
  const launch = () => {
    const run = runs[next++];
    if (run) inFlight.push(read(run, buffers[turn++ % buffers.length] as Buffer));
  };
  for (let k = 0; k < parallel; k++) launch();
  while (inFlight.length > 0) {
    const { run, buf, want } = await (inFlight.shift() as Promise<{
      run: [number, number];
      buf: Buffer;
      want: number;
    }>);
    launch();
    for (let b = run[0]; b <= run[1]; b++) {
      const off = (b - run[0]) * blockSize;
      const plain = buf.subarray(off, Math.min(off + blockSize, want));
      const mac = blockMac(macKey, plain);
      if (!mac.equals(known.subarray(b * 16, b * 16 + 16))) yield { block: b, plain, mac };
    }
  }
}
