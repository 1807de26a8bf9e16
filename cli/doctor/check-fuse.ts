/** `dr doctor`'s instant-recovery check: can this worker serve volumes on demand over FUSE? */
import { fuseUnavailable } from '../../replicator/recovery/fuse-mount.js';
import type { Finding } from './doctor-checks.js';

export async function checkFuse(): Promise<Finding> {
  const why = await fuseUnavailable();
  if (why === undefined) {
    return {
      check: 'instant',
      status: 'ok',
      detail: 'FUSE works: local drills boot from the vault and hydrate behind',
    };
  }
  return {
    check: 'instant',
    status: 'warn',
    detail: `local recoveries materialise in full (slower for big disks): ${why}`,
    remedy: 'give the worker /dev/fuse and fusermount (fuse3), or accept full materialisation',
  };
}
