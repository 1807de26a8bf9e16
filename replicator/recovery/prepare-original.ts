import { open, stat } from 'node:fs/promises';
import { DrError, errorMessage, systemCode } from '../../core/errors.js';
import { VolumeFile } from '../capture/volume-file.js';

/**
 * The original must hold the image's size: a missing or shorter image file is created or
 * extended (a lost original site is rebuilt in full); a block device must match.
 */
export async function prepareOriginal(v: {
  name: string;
  original: string;
  size: number;
}): Promise<void> {
  const s = await stat(v.original).catch((err: unknown) => {
    if (systemCode(err) === 'ENOENT') return undefined;
    throw err;
  });
  if (s && !s.isFile()) {
    const dev = await VolumeFile.open(v.name, v.original);
    const size = await dev.size().finally(() => dev.close());
    if (size < v.size) {
      throw new DrError(
        `the original volume ${v.original} is ${size} bytes, smaller than the recovered ${v.size}`,
        {
          code: 'volume_resized',
          subject: v.original,
          remedy:
            'grow the original device to at least the recovered size, then run failback again',
        },
      );
    }
    return;
  }
  if (!s || s.size !== v.size) {
    const fh = await open(v.original, s ? 'r+' : 'w', 0o600).catch((err: unknown) => {
      throw new DrError(`cannot write the original volume ${v.original}: ${errorMessage(err)}`, {
        code: 'volume_unreadable',
        subject: v.original,
        remedy: 'make its directory writable by the worker, or fix its path in dr.yaml',
        cause: err,
      });
    });
    try {
      await fh.truncate(v.size);
    } finally {
      await fh.close();
    }
  }
}
