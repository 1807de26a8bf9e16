import { chmod, mkdir, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { DrError } from '../../core/errors.js';
import { pidAlive } from '../../core/pid-alive.js';
import type { KeyEncryptionKey } from '../crypto/key-encryption-key.js';
import type { MaterialisedVolume } from '../providers/provider.js';
import type { GatewayClient } from '../transport/gateway-client.js';
import type { PointDetail } from '../transport/wire-types.js';
import { materialiseCached } from './image-cache.js';
import type { ReadParallelism } from './read-parallelism.js';
import { restoreVolume } from './restore-volume.js';

export interface MaterialiseOptions {
  client: GatewayClient;
  kek: KeyEncryptionKey;
  app: string;
  point: PointDetail;
  /** Directory of this operation's images, created 0700 if missing; `<volume>.img` goes in it. */
  dir: string;
  /** Checked between volumes: a volume being written is finished first. */
  signal?: AbortSignal;
  /** 0..1 per volume; every volume ends with 1. */
  onProgress?: (volume: string, fraction: number) => void;
  /**
   * The app's image cache (see materialiseCached): a newer point then fetches only what
   * changed since the last one materialised. Without it, every block is fetched.
   */
  cacheDir?: string;
  /** With `cacheDir`: how each image leaves the cache (see materialiseCached). */
  handover?: 'copy' | 'background-copy' | 'take';
  /** Ranges fetched at once and worker threads (dr.yaml's recovery.restoreParallel/-Workers). */
  parallel?: ReadParallelism | undefined;
}

/**
 * Writes every volume of a point as a sparse raw image, in the point's volume order (system volume
 * first), each byte-exact, authenticated and digest-checked by `restoreVolume`. Images left by an
 * earlier attempt of the same operation are replaced. Reads the gateway only: the source volumes
 * and the agent are never touched, so a drill does not pause replication.
 */
export async function materialisePoint({
  client,
  kek,
  app,
  point,
  dir,
  signal,
  onProgress,
  cacheDir,
  handover,
  parallel,
}: MaterialiseOptions): Promise<MaterialisedVolume[]> {
  const names = volumeOrder(point);
  for (const name of names) imageName(name, app, point.id); // refuse a bad name before writing anything
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700); // mkdir leaves the mode of an existing directory alone
  const out: MaterialisedVolume[] = [];
  for (const name of names) {
    signal?.throwIfAborted();
    const file = imageName(name, app, point.id);
    const path = join(dir, file);
    await removeStalePartials(dir, file);
    const progress = onProgress
      ? { onProgress: (done: number, total: number) => onProgress(name, total ? done / total : 1) }
      : {};
    if (cacheDir) {
      const r = await materialiseCached({
        client,
        kek,
        app,
        point,
        volume: name,
        cacheDir,
        to: path,
        ...(handover ? { handover } : {}),
        ...progress,
        parallel,
        signal,
      });
      onProgress?.(name, 1);
      out.push({ name, path, size: r.size });
      continue;
    }
    const r = await restoreVolume({
      client,
      kek,
      app,
      point,
      volume: name,
      to: path,
      force: true,
      durable: false, // a scratch copy for a recovery job: a crash materialises again
      ...progress,
      ...(parallel ? { parallel } : {}),
      signal,
    });
    onProgress?.(name, 1);
    out.push({ name, path, size: r.size });
  }
  return out;
}

/** The app's volume order as the gateway reports it, restricted to the volumes this point holds. */
export function volumeOrder(point: PointDetail): string[] {
  const inPoint = new Set(Object.keys(point.volumes));
  const ordered = point.volumeInfo.map((v) => v.name).filter((n) => inPoint.has(n));
  // A volume without info cannot be decrypted; restoreVolume names it in its error.
  const rest = [...inPoint].filter((n) => !ordered.includes(n));
  return [...ordered, ...rest];
}

function imageName(volume: string, app: string, pointId: number): string {
  if (!/^[\w][\w.-]*$/.test(volume)) {
    throw new DrError(`volume name ${JSON.stringify(volume)} of ${app} cannot name an image file`, {
      code: 'store_corrupt',
      subject: `${app}@${pointId}`,
      remedy: 'use volume names of letters, digits, `_`, `-` and `.`',
    });
  }
  return `${volume}.img`;
}

/** A crashed earlier attempt leaves `<image>.lifeboat-partial-<pid>[-<random>]` behind; drop those of dead processes. */
async function removeStalePartials(dir: string, file: string): Promise<void> {
  const prefix = `${file}.lifeboat-partial-`;
  for (const f of await readdir(dir)) {
    if (!f.startsWith(prefix)) continue;
    const pid = Number(f.slice(prefix.length).split('-')[0]);
    if (Number.isInteger(pid) && pid > 0 && pidAlive(pid)) continue;
    await unlink(join(dir, f)).catch(() => undefined); // another cleaner got there first
  }
}
