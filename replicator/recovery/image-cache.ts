import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import {
  copyFile,
  type FileHandle,
  mkdir,
  open,
  readFile,
  rename,
  stat,
  unlink,
} from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../core/atomic-file.js';
import { DrError, systemCode } from '../../core/errors.js';
import type { KeyEncryptionKey } from '../crypto/key-encryption-key.js';
import { MAC_BYTES } from '../crypto/volume-key.js';
import type { GatewayClient } from '../transport/gateway-client.js';
import type { PointDetail } from '../transport/wire-types.js';
import { withCacheLock } from './cache-lock.js';
import { openDirect } from './image-writer.js';
import { readPointVolume } from './point-reader.js';
import type { ReadParallelism } from './read-parallelism.js';

/** What `<volume>.json` beside a cached image says about it. */
interface CacheState {
  point: number;
  /** The point's last batch: records after it are what changed since. */
  seqTo: number;
  size: number;
  blockSize: number;
  /** The page cache may hold the image's last writes: a reboot (power loss) voids the cache. */
  bootId: string;
  /** False while the image is being changed: a crash there leaves it unusable. */
  clean: boolean;
}

export interface CachedMaterialise {
  client: GatewayClient;
  kek: KeyEncryptionKey;
  app: string;
  point: PointDetail;
  volume: string;
  /** This app's cache directory (one image per volume, kept between operations). */
  cacheDir: string;
  /** Where the operation's own copy goes. */
  to: string;
  /**
   * How the operation gets its image: `copy` (the default; a reflink where the file system has
   * one, else an in-kernel copy that keeps holes), `background-copy` (the same at low CPU and
   * I/O priority, for drills beside replication), or `take` (the cached image is moved, the
   * fastest, and the next operation rebuilds the cache: for failover). `none`: only the cache
   * is brought forward.
   */
  handover?: 'copy' | 'background-copy' | 'take' | 'none';
  /** How long to wait for a warmer (`dr warm`) that is bringing the cache forward; 2 min. */
  lockWaitMs?: number;
  onProgress?: (done: number, total: number) => void;
  /** Ranges fetched at once and worker threads (see readPointVolume). */
  parallel?: ReadParallelism | undefined;
  /** Cancels the operation: the copy for it stops, and its partial file is removed. */
  signal?: AbortSignal | undefined;
}

export interface CachedResult {
  size: number;
  /** The point the cached image held before, when it was brought forward instead of rebuilt. */
  from?: number;
  /** Blocks fetched from the gateway and decrypted. */
  blocksFetched: number;
}

/**
 * Materialises a volume through a per-app image cache. The cache holds the volume at the last
 * point materialised; a newer point fetches only the records that arrived since (`?since=`),
 * writes them into the cached image, and checks the volume digest over the cached MACs plus the
 * new ones, so a wrong or stale cache cannot pass: it is rebuilt in full instead. The operation
 * then gets its own copy (a reflink where the file system has one, an in-kernel copy else),
 * because a drill or failover server writes to its image.
 */
export function materialiseCached(o: CachedMaterialise): Promise<CachedResult> {
  return withCacheLock(o.cacheDir, () => bringForward(o), o.lockWaitMs ?? LOCK_WAIT_MS).then(
    (r) => r as CachedResult,
  );
}

/**
 * Brings the cache of one volume forward to `point` and hands nothing out: the warmer's job
 * (`dr warm`), so a later drill or failover finds the cache at or near its point. Resolves
 * undefined when a drill or failover holds the cache (it is not waited for).
 */
export async function warmCache(
  o: Omit<CachedMaterialise, 'to' | 'handover'>,
): Promise<CachedResult | undefined> {
  return withCacheLock(o.cacheDir, () => bringForward({ ...o, to: '', handover: 'none' }), 0);
}

/** The point a volume's cache holds now, if any is usable (a quick look, no lock). */
export async function cachedPoint(
  cacheDir: string,
  volume: string,
): Promise<{ point: number; seqTo: number } | undefined> {
  const s = await readState(join(cacheDir, `${volume}.json`));
  return s?.clean && s.bootId === (await currentBootId()) ? s : undefined;
}

async function bringForward(o: CachedMaterialise): Promise<CachedResult> {
  const { point, volume, cacheDir } = o;
  const pv = point.volumes[volume];
  const info = point.volumeInfo.find((v) => v.name === volume);
  if (!pv || !info) {
    throw new DrError(`point ${point.id} of ${o.app} has no volume ${JSON.stringify(volume)}`, {
      code: 'point_unknown',
      subject: volume,
      remedy: `use one of: ${Object.keys(point.volumes).join(', ')}`,
    });
  }
  await mkdir(cacheDir, { recursive: true, mode: 0o700 });
  const image = join(cacheDir, `${volume}.img`);
  const macsPath = join(cacheDir, `${volume}.macs`);
  const statePath = join(cacheDir, `${volume}.json`);
  const blocks = Math.ceil(pv.size / info.blockSize);
  const bootId = await currentBootId();
  const state = await readState(statePath);
  const base =
    state?.clean &&
    state.bootId === bootId &&
    state.size === pv.size &&
    state.blockSize === info.blockSize &&
    state.seqTo <= point.seqTo
      ? await readMacs(macsPath, blocks)
      : undefined;
  const imageOk = base ? (await stat(image).catch(() => undefined))?.size === pv.size : false;

  const mark = (s: Omit<CacheState, 'bootId' | 'size' | 'blockSize'>) =>
    writeFileAtomic(
      statePath,
      JSON.stringify({ ...s, bootId, size: pv.size, blockSize: info.blockSize }),
    );
  let result: CachedResult | undefined;
  if (base && imageOk && state) {
    await mark({ point: state.point, seqTo: state.seqTo, clean: false });
    result = await fill(o, image, { seq: state.seqTo, baseMacs: base }, macsPath).then(
      (r) => ({ ...r, from: state.point }),
      (err: unknown) => {
        if (systemCode(err) === 'stale_cache') return undefined; // rebuilt in full below
        throw err;
      },
    );
  }
  if (!result) {
    await mark({ point: 0, seqTo: -1, clean: false });
    result = await fill(o, image, undefined, macsPath);
  }
  await mark({ point: point.id, seqTo: point.seqTo, clean: true });

  if (o.handover === 'none') return result;
  if (o.handover === 'take') {
    // The cache gives its image away: forget it first, so a crash never leaves a state that
    // describes an image someone else now writes to.
    await unlink(statePath).catch(() => undefined); // already gone: nothing to forget
    try {
      await rename(image, o.to);
      return result;
    } catch (err) {
      if (systemCode(err) !== 'EXDEV') throw err;
      // another file system: copy instead (the cache is forgotten either way)
    }
  }
  const tmp = `${o.to}.lifeboat-partial-${process.pid}`;
  try {
    await copyImage(image, tmp, o.handover === 'background-copy', o.signal);
    await rename(tmp, o.to);
  } catch (err) {
    await unlink(tmp).catch(() => undefined); // may not exist; the error below matters
    throw err;
  }
  return result;
}

/**
 * Writes the point into the cached image: all of it (a fresh sparse file), or with `since`
 * only the blocks that changed (zero blocks written too: the old data must go).
 */
async function fill(
  o: CachedMaterialise,
  image: string,
  since: { seq: number; baseMacs: Buffer } | undefined,
  macsPath: string,
): Promise<CachedResult> {
  const size = o.point.volumes[o.volume]?.size ?? 0;
  const fh = await open(
    image,
    since ? constants.O_RDWR : constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC,
    0o600,
  );
  // Whole pages go O_DIRECT where the file system allows (image-writer.ts), as in a restore.
  let direct: FileHandle | undefined;
  try {
    if (!since) await fh.truncate(size);
    direct = await openDirect(image);
    const r = await readPointVolume({
      client: o.client,
      kek: o.kek,
      app: o.app,
      point: o.point,
      volume: o.volume,
      ...(since ? { since } : {}),
      ...(o.onProgress ? { onProgress: o.onProgress } : {}),
      ...(o.parallel ? { parallel: o.parallel } : {}),
      signal: o.signal,
      // A fresh image is all holes; one brought up to date must have its zeroed blocks written.
      write: { fd: fh.fd, directFd: direct?.fd, zeros: since !== undefined },
    });
    const bad = r.problems[0];
    if (bad) {
      throw new DrError(
        `materialising ${o.app}/${o.volume} at point ${o.point.id} stopped: ${bad.reason}`,
        {
          code: 'block_corrupt',
          subject: `${o.volume} block ${bad.block}`,
          remedy: 'recover an older point, or run `dr verify` to list every damaged block',
        },
      );
    }
    if (!r.digestOk) {
      if (since) throw Object.assign(new Error('cached image is stale'), { code: 'stale_cache' });
      throw new DrError(
        `${o.app}/${o.volume} at point ${o.point.id} does not match the digest its agent committed: a block is missing, swapped or from another point`,
        {
          code: 'store_corrupt',
          subject: `${o.app}/${o.volume}@${o.point.id}`,
          remedy: 'recover an older point; check the gateway store for tampering',
        },
      );
    }
    await writeFileAtomic(macsPath, r.macs);
    return { size, blocksFetched: r.records };
  } finally {
    await direct?.close();
    await fh.close();
  }
}

const LOCK_WAIT_MS = 120_000;

/**
 * GNU cp clones where it can and keeps holes (SEEK_DATA, copy_file_range); `background` runs it
 * under nice and the idle I/O class. Without cp, Node's copy (which fills holes) does it.
 * `signal` kills the cp and rejects with its reason; the caller removes the partial copy.
 */
export async function copyImage(
  from: string,
  to: string,
  background: boolean,
  signal?: AbortSignal,
): Promise<void> {
  signal?.throwIfAborted();
  const cp = ['cp', '--reflink=auto', '--sparse=auto', '--', from, to];
  const argv = background ? ['nice', '-n', '10', 'ionice', '-c', '3', ...cp] : cp;
  const ok = await new Promise<boolean>((resolve) => {
    const child = spawn(argv[0] as string, argv.slice(1), {
      stdio: 'ignore',
      ...(signal ? { signal, killSignal: 'SIGKILL' as const } : {}),
    });
    child.once('error', () => resolve(false)); // no cp (or nice, ionice) here, or cancelled
    // A failed cp is retried in-process, which reports the real error (ENOSPC, say) if any.
    child.once('exit', (code) => resolve(code === 0));
  });
  signal?.throwIfAborted();
  if (!ok) await copyFile(from, to, constants.COPYFILE_FICLONE);
}

async function readState(path: string): Promise<CacheState | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as CacheState;
  } catch {
    return undefined; // missing or half-written: no cache
  }
}

async function readMacs(path: string, blocks: number): Promise<Buffer | undefined> {
  const macs = await readFile(path).catch(() => undefined); // missing: no cache
  return macs?.length === blocks * MAC_BYTES ? macs : undefined;
}

async function currentBootId(): Promise<string> {
  return (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => 'unknown')).trim();
}
