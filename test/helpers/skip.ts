import type { TestContext } from 'vitest';

/** Skips a test for a missing machine feature, printing why (never for a failing test). */
export function skipBecause(ctx: TestContext, reason: string): void {
  process.stderr.write(`skipped "${ctx.task.name}": ${reason}\n`);
  ctx.skip(reason);
}

/**
 * For `describe.skipIf` / `it.skipIf` over a whole suite: prints why it skips (a missing
 * machine feature, never a failing test) and answers whether to skip.
 */
export function missingFeature(reason: string | undefined, suite: string): boolean {
  if (reason !== undefined) process.stderr.write(`skipped "${suite}": ${reason}\n`);
  return reason !== undefined;
}
