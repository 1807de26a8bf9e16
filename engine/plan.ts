/** A recovery plan: apps in ordered groups, what to wait for, hooks and manual steps between groups. */

/** What a group waits for before the plan moves on: every app healthy, or a fixed delay after start. */
export type PlanWait = { kind: 'healthy' } | { kind: 'delay'; ms: number };

/** A step between groups: a command (repoint DNS, a load balancer), or a person pressing continue. */
export type PlanStep =
  | { kind: 'hook'; command: string; timeoutMs: number; line: number }
  | { kind: 'manual'; prompt: string; line: number };

export interface PlanGroup {
  /** Apps recovered together, in parallel. */
  apps: string[];
  wait: PlanWait;
  /**
   * Steps run after this group is up, before the next group starts (`then:` in the file; not
   * called `then` here, which would make a group look like a promise to `await`).
   */
  steps: PlanStep[];
  line: number;
}

/** Which point each app recovers to: each app's newest, or one instant all points precede. */
export type PointPolicy =
  | { kind: 'latest' }
  | {
      kind: 'plan-consistent';
      /** Largest spread between the chosen points; none: any spread. */
      maxSkewMs?: number;
    };

export interface Plan {
  name: string;
  file: string;
  line: number;
  description?: string;
  points: PointPolicy;
  groups: PlanGroup[];
}

/** The apps of a plan in the order they come up (failover, drill). */
export function planApps(plan: Plan): string[] {
  return plan.groups.flatMap((g) => g.apps);
}

/**
 * The groups in the order an operation of `verb` walks them: failover and drill front to back,
 * failback back to front (the web tier leaves before the database it writes to).
 */
export function groupsInOrder(plan: Plan, verb: 'drill' | 'failover' | 'failback'): PlanGroup[] {
  return verb === 'failback' ? [...plan.groups].reverse() : plan.groups;
}

/**
 * The groups as an operation of `verb` walks them, each with the steps that run after it. Steps
 * sit between a group and the next one in the plan's own order; walking back (failback), they run
 * between the same two groups, before the earlier group is touched.
 */
export function walkGroups(
  plan: Plan,
  verb: 'drill' | 'failover' | 'failback',
): { group: PlanGroup; steps: PlanStep[] }[] {
  const groups = groupsInOrder(plan, verb);
  return groups.map((group, i) => ({
    group,
    steps: verb === 'failback' ? (groups[i + 1]?.steps ?? []) : group.steps,
  }));
}
