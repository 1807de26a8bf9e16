// Whether a process still exists on this machine (the one check; process groups: process-group.ts).
import { systemCode } from './errors.js';

/** True while `pid` runs (EPERM: it runs, as another user's). */
export function pidAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return systemCode(err) === 'EPERM';
  }
}
