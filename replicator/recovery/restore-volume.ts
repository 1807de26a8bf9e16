import { randomBytes } from 'node:crypto';
import { constants, unlinkSync } from 'node:fs';
import { type FileHandle, lstat, open, rename, unlink } from 'node:fs/promises';
import { DrError, systemCode } from '../../core/errors.js';
import type { KeyEncryptionKey } from '../crypto/key-encryption-key.js';
import type { GatewayClient } from '../transport/gateway-client.js';
import type { PointDetail } from '../transport/wire-types.js';
import { openDirect } from './image-writer.js';
import { readPointVolume } from './point-reader.js';
import type { ReadParallelism } from './read-parallelism.js';

export interface RestoreOptions {
  client: GatewayClient;
  kek: KeyEncryptionKey;
  app: string;
  point: PointDetail;
  volume: string;
  to: string;
  force?: boolean;
  /**
   * fsync the image before it is renamed into place (default). A recovery
   * job's scratch image skips it: a crash there re-materialises anyway, and
   * flushing 1 GiB would be most of the RTO.
   */
  durable?: boolean;
  onProgress?: (blocksDone: number, blocksTotal: number) => void;
  /** Ranges fetched at once and worker threads (see readPointVolume). */
  parallel?: ReadParallelism;
  /** Stops the restore; the partial image is removed. */
  signal?: AbortSignal | undefined;
}

export interface RestoreResult {
  point: number;
  volume: string;
  to: string;
  size: number;
  bytesWritten: number;
  /** Of those, bytes written with O_DIRECT (past the page cache). */
  bytesDirect: number;
}

/**
 * Writes a byte-exact image of one volume at one point. The image is built
 * beside the target and renamed into place only after every block and the
 * volume digest checked out: a bad store never leaves wrong bytes behind.
 * Zero blocks are left as holes.
 */
export async function restoreVolume({
  client,
  kek,
  app,
  point,
  volume,
  to,
  force = false,
  durable = true,
  onProgress,
  parallel,
  signal,
}: RestoreOptions): Promise<RestoreResult> {
  // lstat: a symbolic link at the target is refused, never written through or replaced.
  const existing = await lstat(to).catch((err: unknown) => {
    if (systemCode(err) === 'ENOENT') return undefined;
    throw err;
  });
  if (existing?.isSymbolicLink()) {
    throw new DrError(`${to} is a symbolic link`, {
      code: 'target_exists',
      subject: to,
      remedy: 'restore to a plain file path (the link is left alone)',
    });
  }
  if (existing && !force) {
    throw new DrError(`${to} already exists`, {
      code: 'target_exists',
      subject: to,
      remedy: 'choose another --to, or add --force to replace it',
    });
  }
  if (existing && !existing.isFile()) {
    throw new DrError(`${to} is not a regular file`, {
      code: 'target_exists',
      subject: to,
      remedy: 'restore to an image file path; copy it onto a device afterwards',
    });
  }
  // The partial image holds plaintext: a fresh name in the target's directory, created only if
  // nothing (not even a planted symbolic link) has it, readable by the owner only, and removed
  // on every error, on abort and, should the process end first, on exit.
  const tmp = `${to}.lifeboat-partial-${process.pid}-${randomBytes(6).toString('hex')}`;
  let fh: FileHandle | undefined = await open(
    tmp,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    0o600,
  );
  const removeOnExit = () => {
    try {
      unlinkSync(tmp);
    } catch {
      // already gone (renamed into place or removed): nothing to clean
    }
  };
  process.once('exit', removeOnExit);
  let bytesWritten = 0;
  // Whole pages are written O_DIRECT through a second descriptor where the file system allows.
  let direct: FileHandle | undefined;
  try {
    const size = point.volumes[volume]?.size ?? 0;
    await fh.truncate(size);
    direct = await openDirect(tmp);
    const result = await readPointVolume({
      client,
      kek,
      app,
      point,
      volume,
      ...(onProgress ? { onProgress } : {}),
      ...(parallel ? { parallel } : {}),
      signal,
      // Zero blocks stay holes: the image was truncated to size.
      write: { fd: fh.fd, directFd: direct?.fd, zeros: false },
    });
    bytesWritten = result.bytesWritten;
    const bad = result.problems[0];
    if (bad) {
      throw new DrError(`restore of ${app}/${volume} at point ${point.id} stopped: ${bad.reason}`, {
        code: 'block_corrupt',
        subject: `${volume} block ${bad.block}`,
        remedy: 'restore an older point, or run `dr verify` to list every damaged block',
      });
    }
    if (!result.digestOk) {
      throw new DrError(
        `${app}/${volume} at point ${point.id} does not match the digest its agent committed: a block is missing, swapped or from another point`,
        {
          code: 'store_corrupt',
          subject: `${app}/${volume}@${point.id}`,
          remedy: 'restore an older point; check the gateway store for tampering',
        },
      );
    }
    await direct?.close();
    direct = undefined;
    if (durable) await fh.sync();
    await fh.close();
    fh = undefined;
    // rename replaces the name itself: a link planted at `to` meanwhile is replaced, not followed.
    await rename(tmp, to);
    return {
      point: point.id,
      volume,
      to,
      size: result.size,
      bytesWritten,
      bytesDirect: result.bytesDirect,
    };
  } catch (err) {
    await direct?.close().catch(() => undefined); // already failing: the partial file is removed next
    await fh?.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined); // may not exist yet; nothing else to clean
    throw err;
  } finally {
    process.off('exit', removeOnExit);
  }
}
