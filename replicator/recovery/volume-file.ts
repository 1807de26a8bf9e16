/** Whole reads and writes of an on-demand volume's local file: short reads and writes are carried on. */
import type { FileHandle } from 'node:fs/promises';
import { blockMac, MAC_BYTES } from '../crypto/volume-key.js';

/** Reads `len` bytes at `position` into `into`, zeros past the file's end; resolves `len`. */
export async function readFully(
  fh: FileHandle,
  into: Buffer,
  len: number,
  position: number,
): Promise<number> {
  let done = 0;
  while (done < len) {
    const { bytesRead } = await fh.read(into, done, len - done, position + done);
    if (bytesRead === 0) into.fill(0, done, len);
    done += bytesRead || len - done;
  }
  return len;
}

/**
 * Writes blocks as they come, neighbouring ones gathered into one positioned writev of up to
 * 4 MiB: a hydrator request of 16 MiB holds at most one run in memory, not the whole request,
 * and makes a few writes, not one per 64 KiB block.
 */
export class BlockRuns {
  #run: Buffer[] = [];
  #bytes = 0;
  #first = 0;
  #next = -1;

  constructor(
    private readonly fh: FileHandle,
    private readonly blockSize: number,
    private readonly runBytes = 4 * 1024 * 1024,
  ) {}

  /** Keeps `plain` (held until written) as block `block`; writes the run before it when it breaks off. */
  async add(block: number, plain: Buffer): Promise<void> {
    if (this.#run.length > 0 && (block !== this.#next || this.#bytes >= this.runBytes)) {
      await this.flush();
    }
    if (this.#run.length === 0) this.#first = block;
    this.#run.push(plain);
    this.#bytes += plain.length;
    this.#next = block + 1;
  }

  /** Writes what is held. */
  async flush(): Promise<void> {
    const run = this.#run;
    const bytes = this.#bytes;
    if (run.length === 0) return;
    this.#run = [];
    this.#bytes = 0;
    const at = this.#first * this.blockSize;
    let done = (await this.fh.writev(run, at)).bytesWritten;
    if (done >= bytes) return;
    // A short writev: the rest from one buffer.
    const all = Buffer.concat(run);
    while (done < bytes)
      done += (await this.fh.write(all, done, bytes - done, at + done)).bytesWritten;
  }
}

/** Writes zeros over each block (of `blockLen(b)` bytes). */
export async function writeZeros(
  fh: FileHandle,
  blocks: number[],
  blockSize: number,
  blockLen: (block: number) => number,
): Promise<void> {
  for (const b of blocks) {
    const len = blockLen(b);
    await fh.write(Buffer.alloc(len), 0, len, b * blockSize);
  }
}

/** Where to look for blocks an earlier attempt left, and the MACs they must have. */
export interface MatchOptions {
  /** Blocks [from, to). */
  from: number;
  to: number;
  blockSize: number;
  /** The volume's size (its last block may be short). */
  size: number;
  macKey: Buffer;
  /** The MAC each block must have, 16 bytes a block from block 0. */
  macs: Buffer;
}

/** The blocks in [from, to) of the file whose keyed MAC is the one the point committed. */
export async function matchingBlocks(fh: FileHandle, o: MatchOptions): Promise<number[]> {
  const { from, to, blockSize } = o;
  const buf = Buffer.alloc(Math.min(o.size, to * blockSize) - from * blockSize);
  await readFully(fh, buf, buf.length, from * blockSize);
  const ok: number[] = [];
  for (let b = from; b < to; b++) {
    const off = (b - from) * blockSize;
    const plain = buf.subarray(off, Math.min(buf.length, off + blockSize));
    const want = o.macs.subarray(b * MAC_BYTES, (b + 1) * MAC_BYTES);
    if (blockMac(o.macKey, plain).equals(want)) ok.push(b);
  }
  return ok;
}
