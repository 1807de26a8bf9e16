// The state files a demo service (demo-shop, demo-web) keeps beside STATE, for its hooks and
// checks: STATE (its pid and address, written whole), STATE.pid, STATE.down while fenced, and
// STATE.frozen while frozen. Only Node's own modules, like the services.
import { rename, rm, writeFile } from 'node:fs/promises';

/** Says where the service is: STATE's JSON, STATE.pid, and STATE.down when it starts fenced. */
export async function announceService(
  state: string,
  info: Record<string, unknown>,
  fenced: boolean,
): Promise<void> {
  await writeFile(`${state}.tmp`, `${JSON.stringify({ pid: process.pid, ...info })}\n`);
  await rename(`${state}.tmp`, state);
  await rm(`${state}.frozen`, { force: true });
  if (fenced) await writeFile(`${state}.down`, '');
  else await rm(`${state}.down`, { force: true });
  await writeFile(`${state}.pid`, `${process.pid}\n`);
}

/**
 * On SIGTERM or SIGINT: `stopWork` (stop the workload, close the server), then wait for the
 * write in flight (`settle`), close the data (`close`), clear STATE.pid and STATE.frozen, exit 0.
 */
export function stopServiceOnSignal(
  state: string,
  stopWork: () => void,
  settle: () => Promise<unknown>,
  close: () => Promise<void> | undefined,
): void {
  const stop = async () => {
    stopWork();
    await rm(`${state}.pid`, { force: true });
    await rm(`${state}.frozen`, { force: true });
    await settle();
    await close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
  process.once('SIGINT', () => void stop());
}
