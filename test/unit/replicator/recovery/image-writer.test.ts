// Image writes through O_DIRECT from aligned staging memory: byte-exact whatever the run's shape.
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DIRECT_ALIGN,
  imageWriter,
  openDirect,
} from '../../../../replicator/recovery/image-writer.js';
import { skipBecause } from '../../../helpers/skip.js';

const BLOCK = 64 * 1024;

describe('image writer', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-image-writer-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** An image of `size` bytes written by `put` through a writer with (or without) O_DIRECT. */
  async function written(
    size: number,
    put: (w: ReturnType<typeof imageWriter>) => Promise<void>,
    direct: boolean,
  ) {
    const path = join(dir, `image-${direct}`);
    const fh = await open(path, 'wx', 0o600);
    const dfh = direct ? await openDirect(path) : undefined;
    try {
      await fh.truncate(size);
      const w = imageWriter({ fd: fh.fd, directFd: dfh?.fd });
      await put(w);
      return { bytes: await readFile(path), direct: w.directBytes, hadDirect: dfh !== undefined };
    } finally {
      await dfh?.close();
      await fh.close();
    }
  }

  it('writes odd runs byte-exact: a tail shorter than the alignment, holes, runs larger than its staging', async (ctx) => {
    // 300 blocks and a 57-byte tail; blocks 10-19 and 200 are holes (left as zeros).
    const size = 300 * BLOCK + 57;
    const want = Buffer.alloc(size);
    const block = (b: number) => want.subarray(b * BLOCK, Math.min(size, (b + 1) * BLOCK));
    for (let b = 0; b <= 300; b++)
      if (!(b >= 10 && b < 20) && b !== 200) randomBytes(block(b).length).copy(block(b));
    const runs: Array<[number, number]> = [
      [0, 10],
      [20, 200], // 180 blocks, 11.25 MiB: more than the four 2 MiB chunks at once
      [201, 301], // ends with the short tail
    ];
    for (const direct of [true, false]) {
      const r = await written(
        size,
        (w) =>
          Promise.all(
            runs.map(([from, to]) =>
              w.write(
                Array.from({ length: to - from }, (_, i) => Buffer.from(block(from + i))),
                from * BLOCK,
              ),
            ),
          ).then(() => undefined),
        direct,
      );
      expect(r.bytes.equals(want), `direct ${direct}`).toBe(true);
      if (!direct) expect(r.direct).toBe(0);
      else if (!r.hadDirect) skipBecause(ctx, `the file system under ${tmpdir()} refuses O_DIRECT`);
      else {
        // Every whole page went O_DIRECT; only the 57-byte tail went through the page cache.
        expect(r.direct).toBe(289 * BLOCK);
        expect(r.direct % DIRECT_ALIGN).toBe(0);
      }
    }
  });

  it('writes a volume smaller than one page (the tail alone) through the page cache', async () => {
    const want = randomBytes(1000);
    const r = await written(want.length, (w) => w.write([Buffer.from(want)], 0), true);
    expect(r.bytes.equals(want)).toBe(true);
    expect(r.direct).toBe(0);
  });

  it('a write that fails is an error, not a hang', async () => {
    const path = join(dir, 'read-only');
    await (await open(path, 'wx', 0o600)).close();
    const fh = await open(path, 'r');
    try {
      for (const w of [imageWriter({ fd: fh.fd }), imageWriter({ fd: fh.fd, directFd: fh.fd })]) {
        await expect(w.write([randomBytes(BLOCK)], 0)).rejects.toMatchObject({ code: 'EBADF' });
        // Its staging chunk came back: the next write fails the same way, it does not wait.
        await expect(w.write([randomBytes(BLOCK)], 0)).rejects.toMatchObject({ code: 'EBADF' });
      }
    } finally {
      await fh.close();
    }
  });
});
