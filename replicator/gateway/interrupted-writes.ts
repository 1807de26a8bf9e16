/** Crash cleanup of an app's folder: temp files of interrupted atomic writes and point indexes no catalog names. */
import { mkdir, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../core/log.js';
import type { Catalog } from './catalog.js';

export async function removeInterruptedWrites(
  dir: string,
  catalog: Pick<Catalog, 'points'>,
  log: Logger,
): Promise<void> {
  const pointsDir = join(dir, 'points');
  await mkdir(pointsDir, { recursive: true });
  const known = new Set(catalog.points.map((p) => `${p.id}.idx`));
  for (const [folder, name] of [
    ...(await readdir(dir)).map((n) => [dir, n] as const),
    ...(await readdir(pointsDir)).map((n) => [pointsDir, n] as const),
  ]) {
    const orphanIndex = folder === pointsDir && name.endsWith('.idx') && !known.has(name);
    if (name.includes('.tmp-') || orphanIndex) {
      await unlink(join(folder, name));
      log.info({ file: join(folder, name) }, 'removed a file left by an interrupted write');
    }
  }
}
