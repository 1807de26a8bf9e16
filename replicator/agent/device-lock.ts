import { stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readEnv } from '../../core/env.js';
import { DrError } from '../../core/errors.js';
import { PidLock } from '../../core/pid-lock.js';

/** Machine-wide, whatever DR_HOME an agent uses: /run when writable, else the temp folder. */
export function deviceLockDir(env: NodeJS.ProcessEnv = process.env): string {
  return (
    readEnv('DR_LOCK_DIR', env) ??
    (process.getuid?.() === 0 ? '/run/lifeboat/locks' : join(tmpdir(), 'lifeboat-locks'))
  );
}

/**
 * Two agents on one device (two apps naming the same disk, or two homes)
 * would each ship it under their own keys and fight over its freeze: the
 * second is refused, naming the first.
 */
export async function lockDevice(
  path: string,
  volume: string,
  app: string,
  dir = deviceLockDir(),
): Promise<PidLock> {
  const st = await stat(path);
  const id = st.isBlockDevice() ? `dev-${st.rdev}` : `file-${st.dev}-${st.ino}`;
  return PidLock.acquire(join(dir, `${id}.lock`), {
    body: { app },
    conflict: (holder) =>
      new DrError(
        `volume ${volume} (${path}) is already replicated by another agent (app ${holder.app ?? '?'}, pid ${holder.pid})`,
        {
          code: 'agent_conflict',
          subject: path,
          remedy: `stop that agent, or remove the volume from one of the apps; one agent per device`,
        },
      ),
  });
}
