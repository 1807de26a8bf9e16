import type { TestContext } from 'vitest';

/** Skips a test for a missing machine feature, printing why (never for a failing test). */
export function skipBecause(ctx: TestContext, reason: string): void {
  process.stderr.write(`skipped "${ctx.task.name}": ${reason}\n`);
  ctx.skip(reason);
}
