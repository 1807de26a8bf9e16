import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyImage } from '../../../../replicator/recovery/image-cache.js';
import { skipBecause } from '../../../helpers/skip.js';

let dir: string;
let image: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-copy-'));
  image = join(dir, 'image.img');
  // Random data: cp must really copy it (no holes to skip), which takes long enough to cancel.
  const chunks = Array.from({ length: 16 }, () => randomBytes(16 * 1024 * 1024));
  await writeFile(image, Buffer.concat(chunks));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('copying an image for a recovery (copyImage)', () => {
  it('refuses to start once the operation is cancelled', async () => {
    const to = join(dir, 'never.img');
    const cancelled = AbortSignal.abort(new Error('cancelled by alice'));
    await expect(copyImage(image, to, true, cancelled)).rejects.toThrow('cancelled by alice');
    expect(existsSync(to)).toBe(false);
  });

  it('stops the copy when the operation is cancelled midway', async (ctx) => {
    const to = join(dir, 'partial.img');
    const ac = new AbortController();
    const copy = copyImage(image, to, true, ac.signal);
    setTimeout(() => ac.abort(new Error('cancelled by bob')), 5);
    const outcome = await copy.then(
      () => 'finished',
      (err: Error) => err.message,
    );
    if (outcome === 'finished') {
      skipBecause(
        ctx,
        'this file system copied 256 MiB within 5 ms (a reflink clone): nothing to stop',
      );
    }
    expect(outcome).toBe('cancelled by bob');
  });

  it('copies the image whole when nobody cancels', async () => {
    const to = join(dir, 'whole.img');
    await copyImage(image, to, false, new AbortController().signal);
    expect((await readFile(to)).equals(await readFile(image))).toBe(true);
  });
});
