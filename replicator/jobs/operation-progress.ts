/** How a running operation reports progress: materialise progress throttled, hydration followed to the end. */
import { setTimeout as sleep } from 'node:timers/promises';
import type { InstantRecovery } from '../recovery/instant-point.js';
import type { RecoveryKind } from './recovery-contract.js';

/** Waits for an instant recovery to be whole: progress every 5 % (checked every 2 s), a whole step each quarter. */
export async function awaitHydration(
  served: InstantRecovery,
  signal: AbortSignal,
  progress: (fraction: number) => unknown,
  wholeStep: (step: string) => unknown,
): Promise<NonNullable<RecoveryKind['hydration']>> {
  let done = false;
  const finished = served.hydrated.finally(() => {
    done = true;
  });
  let last = -1;
  let quarter = 0;
  while (!done) {
    const f = served.fraction();
    if (f - last >= 0.05) {
      last = f;
      await progress(f);
    }
    // Chat shows whole steps only: each quarter passed is one.
    while (quarter < 3 && f >= (quarter + 1) / 4) {
      quarter++;
      await wholeStep(`hydrated-${quarter * 25}`);
    }
    await Promise.race([finished.catch(() => undefined), sleep(2000, undefined, { signal })]);
  }
  return finished;
}

/** Emits materialise progress over all volumes at most every 5 %. */
export function progressThrottle(emit: (fraction: number) => unknown) {
  const done = new Map<string, number>();
  let last = 0;
  return (volume: string, fraction: number) => {
    done.set(volume, fraction);
    const all = [...done.values()].reduce((a, b) => a + b, 0) / Math.max(1, done.size);
    if (all - last >= 0.05 || fraction === 1) {
      last = all;
      emit(Math.min(1, all));
    }
  };
}
