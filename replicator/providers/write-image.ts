import { open } from 'node:fs/promises';

const CHUNK = 1024 * 1024;
const ZERO = Buffer.alloc(CHUNK);

/**
 * Writes a raw volume image onto a freshly created disk (a block device or a file), skipping
 * chunks that are all zero: a new cloud disk reads as zeros, so a sparse image costs only its data.
 * Calls `onBytes` with the bytes done after each chunk; stops at the signal.
 */
export async function writeImage(
  image: string,
  device: string,
  { signal, onBytes }: { signal: AbortSignal; onBytes?: (bytes: number) => void },
): Promise<{ bytes: number; written: number }> {
  const src = await open(image, 'r');
  try {
    const dst = await open(device, 'r+');
    try {
      const buf = Buffer.alloc(CHUNK);
      let pos = 0;
      let written = 0;
      for (;;) {
        signal.throwIfAborted();
        const { bytesRead } = await src.read(buf, 0, CHUNK, pos);
        if (bytesRead === 0) break;
        const chunk = buf.subarray(0, bytesRead);
        if (!chunk.equals(ZERO.subarray(0, bytesRead))) {
          await dst.write(chunk, 0, bytesRead, pos);
          written += bytesRead;
        }
        pos += bytesRead;
        onBytes?.(pos);
      }
      await dst.sync();
      return { bytes: pos, written };
    } finally {
      await dst.close();
    }
  } finally {
    await src.close();
  }
}
