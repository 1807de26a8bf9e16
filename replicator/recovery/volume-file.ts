/** Whole reads and writes of an on-demand volume's local file: short reads and writes are carried on. */
import type { FileHandle } from 'node:fs/promises';

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

/** Writes each block's plaintext at its place in the file. */
export async function writeBlocks(
  fh: FileHandle,
  blocks: Map<number, Buffer>,
  blockSize: number,
): Promise<void> {
  for (const [b, plain] of blocks) {
    let done = 0;
    while (done < plain.length) {
      const { bytesWritten } = await fh.write(
        plain,
        done,
        plain.length - done,
        b * blockSize + done,
      );
      done += bytesWritten;
    }
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
