/** The errors of the segment log: a segment damaged or cut short, and a full store disk. */
import { DrError, systemCode } from '../../core/errors.js';

export function corruptSegment(path: string, why: string, cause?: unknown): DrError {
  return new DrError(`segment ${path} ${why}`, {
    code: 'store_corrupt',
    subject: path,
    remedy:
      'restore the gateway store from a backup, or re-sync the app from its source with `dr agent --once`',
    cause,
  });
}

/** A write to `path` that failed for want of space, as the agent is told; any other error as it is. */
export function storeFull(path: string, dir: string, err: unknown): unknown {
  const code = systemCode(err);
  if (code !== 'ENOSPC' && code !== 'EDQUOT') return err;
  return new DrError(`the gateway store is full: cannot write ${path} (${code})`, {
    code: 'gateway_full',
    subject: dir,
    remedy:
      'free space on the gateway disk or shorten the retention; the agent keeps the batch and retries',
    cause: err,
  });
}
