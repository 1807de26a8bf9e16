import { mkdir, open, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DrError, systemCode } from '../../core/errors.js';

/**
 * One user of an app's cache at a time on this machine: a lock file holding the pid, taken
 * with O_EXCL; one left by a dead process is removed. Waits up to `waitMs` (0: resolves
 * undefined at once when busy).
 */
export async function withCacheLock<T>(
  dir: string,
  fn: () => Promise<T>,
  waitMs: number,
): Promise<T | undefined> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, 'lock');
  const until = Date.now() + waitMs;
  for (;;) {
    try {
      const fh = await open(path, 'wx', 0o600);
      await fh.writeFile(String(process.pid));
      await fh.close();
      break;
    } catch (err) {
      if (systemCode(err) !== 'EEXIST') throw err;
      const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
      if (!(pid > 0 && pidAlive(pid))) {
        await unlink(path).catch(() => undefined); // another taker removed it first
        continue;
      }
      if (Date.now() >= until) {
        if (waitMs === 0) return undefined;
        throw new DrError(`the image cache ${dir} is busy (process ${pid})`, {
          code: 'operation_conflict',
          subject: dir,
          remedy: 'wait for the other drill, failover or `dr warm` to finish, then try again',
        });
      }
      await sleep(100);
    }
  }
  try {
    return await fn();
  } finally {
    await unlink(path).catch(() => undefined); // removed already: nothing to release
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return systemCode(err) === 'EPERM';
  }
}
