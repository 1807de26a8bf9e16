import { setTimeout as sleep } from 'node:timers/promises';

/** Polls until `probe` gives a value; undefined after `ms` (the chaos run reports it, not throws). */
export async function until<T>(
  probe: () => Promise<T | undefined>,
  ms: number,
  every = 200,
): Promise<T | undefined> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) return undefined;
    await sleep(every);
  }
}
