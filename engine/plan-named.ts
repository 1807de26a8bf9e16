/** Finds a plan by name in plans/ of the home, as the engine and `dr plan` look it up. */
import { join } from 'node:path';
import { loadPlanDir } from './load-plan-dir.js';
import type { Plan } from './plan.js';
import type { PolicyProblem } from './policy.js';

export type PlanLookup =
  | { kind: 'found'; plan: Plan }
  /** No plan of that name; `names` are the plans there are. */
  | { kind: 'none'; dir: string; names: string[] }
  /** The plan files have problems (an unknown app, a bad line): none is used until they are fixed. */
  | { kind: 'invalid'; dir: string; problems: PolicyProblem[] };

/** The plan directory of a home. */
export const planDirOf = (home: string) => join(home, 'plans');

/** The plan `name` of the home, checked against the apps of dr.yaml. */
export async function planNamed(
  home: string,
  apps: Iterable<string>,
  name: string,
): Promise<PlanLookup> {
  const dir = planDirOf(home);
  const r = await loadPlanDir(dir, { knownApps: new Set(apps) });
  if (!r.set) return { kind: 'invalid', dir, problems: r.problems };
  const plan = r.set.plans.find((p) => p.name === name);
  return plan
    ? { kind: 'found', plan }
    : { kind: 'none', dir, names: r.set.plans.map((p) => p.name) };
}
