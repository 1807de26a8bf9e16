/** One decision for a whole plan: the strictest of its apps' decisions, stricter tier first on a tie. */
import type { Explanation } from './explain-command.js';

const RANK: Record<Explanation['would'], number> = { read: 0, allow: 1, approval: 2, deny: 3 };
const TIER_RANK: Record<string, number> = { dev: 0, staging: 1, prod: 2 };

export interface PlanDecision {
  would: Explanation['would'];
  /** The app whose decision is the plan's. */
  app: string;
  tier: string;
  reason: string;
  policy?: string;
}

/**
 * A plan runs as one operation with one approval, so it gets the strictest rule any of its apps
 * gets: a deny for any app denies the plan; else an approval for any app asks for that approval;
 * between equal outcomes the app of the stricter tier (prod over staging over dev) decides.
 */
export function planDecision(
  perApp: readonly {
    app: string;
    tier: string;
    explanation: Pick<Explanation, 'would' | 'reason' | 'policy'>;
  }[],
): PlanDecision | undefined {
  let best: (typeof perApp)[number] | undefined;
  for (const a of perApp) {
    if (!best) {
      best = a;
      continue;
    }
    const d = RANK[a.explanation.would] - RANK[best.explanation.would];
    if (d > 0 || (d === 0 && (TIER_RANK[a.tier] ?? 0) > (TIER_RANK[best.tier] ?? 0))) best = a;
  }
  if (!best) return undefined;
  return {
    would: best.explanation.would,
    app: best.app,
    tier: best.tier,
    reason: best.explanation.reason,
    ...(best.explanation.policy ? { policy: best.explanation.policy } : {}),
  };
}
