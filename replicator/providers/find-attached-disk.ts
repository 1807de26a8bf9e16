/** Finds the block device a hot-attached ECS disk became inside the worker's guest, by its serial. */
import { readdir, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DrError } from '../../core/errors.js';

export interface FindDiskOptions {
  /** The guest's by-id directory; /dev/disk/by-id on a real worker. */
  byIdDir: string;
  /** How long udev may take to make the link; 60 s by default. */
  timeoutMs?: number;
  /** First wait between looks, growing by half each time up to 8 times it; 100 ms by default. */
  pollMs?: number;
  signal: AbortSignal;
}

/**
 * The serial an ECS disk shows its guest: its id without `d-`. virtio-blk cuts serials at 20
 * characters; NVMe keeps them whole.
 */
export function diskSerials(diskId: string, reported?: string): string[] {
  const bare = (reported || diskId.replace(/^d-/, '')).trim();
  return [...new Set([bare, bare.slice(0, 20)])].filter(Boolean);
}

/** Whether a by-id link name is the whole disk with this serial (not one of its partitions). */
function matches(name: string, serials: string[]): boolean {
  if (/-part\d+$/.test(name)) return false;
  return serials.some(
    (s) =>
      name === `virtio-${s}` ||
      name === `nvme-Alibaba_Cloud_Elastic_Block_Storage_${s}` ||
      name.endsWith(`_${s}`),
  );
}

/**
 * The device path of the disk: ECS reports `/dev/xvdb`, but a Linux guest names it `/dev/vdb`
 * (virtio) or `/dev/nvme1n1` (NVMe) in attach order, so the only stable handle is the serial
 * under /dev/disk/by-id. Waits with growing pauses, bounded by the timeout.
 */
export async function findAttachedDisk(
  diskId: string,
  reportedSerial: string | undefined,
  { byIdDir, timeoutMs = 60_000, pollMs = 100, signal }: FindDiskOptions,
): Promise<string> {
  const serials = diskSerials(diskId, reportedSerial);
  const deadline = Date.now() + timeoutMs;
  let wait = pollMs;
  for (;;) {
    signal.throwIfAborted();
    let names: string[] = [];
    try {
      names = await readdir(byIdDir);
    } catch (err) {
      // udev makes the directory with the first disk that has an id: absent means "none yet"
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const name = names.find((n) => matches(n, serials));
    if (name) return realpath(join(byIdDir, name));
    if (Date.now() >= deadline) {
      throw new DrError(
        `disk ${diskId} is attached but no device with serial ${serials[0]} appeared under ${byIdDir} within ${Math.round(timeoutMs / 1000)} s`,
        {
          code: 'provider_failed',
          subject: diskId,
          remedy:
            'run `dr worker` on the ECS instance named by workerInstanceId, as root, with /dev visible (on the host, or a privileged container with /dev mounted)',
        },
      );
    }
    await sleep(Math.min(wait, Math.max(1, deadline - Date.now())), undefined, { signal });
    wait = Math.min(wait * 1.5, pollMs * 8);
  }
}
