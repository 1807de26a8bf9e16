/** What a policy file is checked against: the groups of dr.yaml and the plans of the home. */
import type { Config } from '../core/config.js';
import { knownGroups } from './identity.js';
import { loadPlanDir } from './load-plan-dir.js';
import type { ParseOptions } from './parse-policy-file.js';
import { planDirOf } from './plan-named.js';

/**
 * The parse options of the home's policies, read now. While the plan files do not load, the plan
 * names of schedules go unchecked here: a scheduled run of such a plan is refused when it fires,
 * with the plans' problems (`dr plan lint` lists them).
 */
export async function policyParseOptions(
  config: Pick<Config, 'people' | 'apps'>,
  home: string,
): Promise<ParseOptions> {
  const plans = await loadPlanDir(planDirOf(home), {
    knownApps: new Set(Object.keys(config.apps)),
  });
  return {
    knownGroups: knownGroups(config),
    ...(plans.set ? { knownPlans: new Set(plans.set.plans.map((p) => p.name)) } : {}),
  };
}
