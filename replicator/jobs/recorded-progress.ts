/** How far a recorded operation got: its last step done, and whether its images are still on disk. */
import { stat } from 'node:fs/promises';
import type { RecordedSteps } from './recovery-contract.js';

export function lastStep(steps: RecordedSteps): string {
  if (steps.healthy) return 'healthy';
  if (steps.launched) return 'launched';
  if (steps.materialised) return 'materialised';
  if (steps.resolved) return 'resolved';
  return 'none';
}

export async function imagesPresent(volumes: { path: string }[]): Promise<boolean> {
  for (const v of volumes) {
    const ok = await stat(v.path).then(
      (s) => s.isFile(),
      () => false, // gone (cleaned, or another disk): materialise again
    );
    if (!ok) return false;
  }
  return true;
}
