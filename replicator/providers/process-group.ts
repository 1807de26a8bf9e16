import { systemCode } from '../../core/errors.js';

/** Whether process group PGID still exists (EPERM: it does, owned by someone else). */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    return systemCode(err) === 'EPERM';
  }
}

/** Sends SIG to every process of group PGID; a group that ended meanwhile is not an error. */
export function signalGroup(pgid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pgid, sig);
  } catch (err) {
    if (systemCode(err) !== 'ESRCH') throw err; // ESRCH: the group ended by itself meanwhile
  }
}
