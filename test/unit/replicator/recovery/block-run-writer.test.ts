// Blocks land at their offsets, a short last block included, in runs of neighbouring blocks.
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BlockRunWriter } from '../../../../replicator/recovery/block-run-writer.js';

const BLOCK = 4096;

describe('BlockRunWriter', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-runs-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes runs, gaps and a short last block where they belong', async () => {
    const size = 40 * BLOCK + 123;
    const expected = Buffer.alloc(size);
    const fh = await open(join(dir, 'img'), 'w+');
    await fh.truncate(size);
    // Small runs and one write at a time, so several runs and waits happen.
    const w = new BlockRunWriter(fh, BLOCK, { runBytes: 3 * BLOCK, inFlight: 1 });
    const blocks = [0, 1, 2, 3, 4, 9, 10, 20, 5, 39, 40];
    for (const b of blocks) {
      const data = randomBytes(b === 40 ? 123 : BLOCK);
      data.copy(expected, b * BLOCK);
      await w.add(b, data);
    }
    await w.flush();
    await fh.close();
    expect((await readFile(join(dir, 'img'))).equals(expected)).toBe(true);
    expect(w.written).toBe((blocks.length - 1) * BLOCK + 123);
  });

  it('throws the write error at the next flush', async () => {
    const fh = await open(join(dir, 'img'), 'w+');
    const w = new BlockRunWriter(fh, BLOCK);
    await fh.close(); // every write now fails with EBADF
    await w.add(0, randomBytes(BLOCK));
    await expect(w.flush()).rejects.toThrow(/EBADF|closed/);
  });
});
