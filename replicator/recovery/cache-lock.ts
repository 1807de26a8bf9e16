// One user of an app's image cache at a time on this machine: the cache's pid lock.
import { join } from 'node:path';
import { DrError, isDrError } from '../../core/errors.js';
import { PidLock } from '../../core/pid-lock.js';

/**
 * Runs `fn` holding the cache's lock (`<dir>/lock`); one left by a dead process is taken over.
 * Waits up to `waitMs` for a live holder (0: resolves undefined at once when busy).
 */
export async function withCacheLock<T>(
  dir: string,
  fn: () => Promise<T>,
  waitMs: number,
): Promise<T | undefined> {
  let lock: PidLock;
  try {
    lock = await PidLock.acquire(join(dir, 'lock'), {
      waitMs,
      sameProcess: 'wait',
      mode: { file: 0o600, dir: 0o700 },
      conflict: (holder) =>
        new DrError(`the image cache ${dir} is busy (process ${holder.pid})`, {
          code: 'operation_conflict',
          subject: dir,
          remedy: 'wait for the other drill, failover or `dr warm` to finish, then try again',
        }),
    });
  } catch (err) {
    if (waitMs === 0 && isDrError(err) && err.code === 'operation_conflict') return undefined;
    throw err;
  }
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}
