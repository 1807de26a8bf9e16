import type { PolicyOutcome, Verb } from './contract.js';
import type { Policy } from './policy.js';
import type { PolicySet } from './policy-set.js';

/** Facts of one command, as `commandFacts` computes them (or a policy test states them). */
export type Facts = Record<string, unknown> & { verb: Verb; now: number };

export interface Evaluation {
  /** `none`: no enforced policy matched; the caller refuses actions by default. */
  outcome: 'allow' | 'deny' | 'approval' | 'none';
  /** The policy that decided (deny, approval, or the first allow). */
  policy?: Policy;
  /** For `approval`: the largest requirement that matched. */
  approval?: { count: number; groups: string[]; expiresMs: number };
  /** Every decisive policy that can apply to the verb and app, matched or not, with its conditions. */
  outcomes: PolicyOutcome[];
  /** `warn` policies that matched: what they would have done. */
  warnings: string[];
}

interface ConditionResult {
  fact?: string;
  operator?: string;
  value?: unknown;
  factResult?: unknown;
  result?: boolean;
  all?: ConditionResult[];
  any?: ConditionResult[];
  not?: ConditionResult;
}

/**
 * Runs the decisive policies on the facts. Deny wins; else the largest approval requirement;
 * else allow. `warn` and `dryrun` policies are evaluated and reported but never decide.
 */
export async function evaluatePolicies(set: PolicySet, facts: Facts): Promise<Evaluation> {
  const byName = new Map(set.decisive.map((p) => [p.name, p]));
  const app = typeof facts.app === 'string' ? facts.app : undefined;
  const tier = typeof facts.tier === 'string' ? facts.tier : undefined;
  const run = await set.engineFor(facts.verb, app, tier).run(facts);
  const outcomes: PolicyOutcome[] = [];
  const matched: Policy[] = [];
  for (const [results, ok] of [
    [run.results, true],
    [run.failureResults, false],
  ] as const) {
    for (const r of results) {
      const p = byName.get(r.name);
      if (!p) continue;
      if (ok) matched.push(p);
      outcomes.push({
        policy: p.name,
        file: p.file,
        mode: p.mode,
        matched: ok,
        effect: p.effect.kind,
        conditions: flatten(r.conditions as ConditionResult),
      });
    }
  }
  const order = new Map(set.decisive.map((p, i) => [p.name, i]));
  outcomes.sort((a, b) => (order.get(a.policy) ?? 0) - (order.get(b.policy) ?? 0));
  matched.sort((a, b) => (order.get(a.name) ?? 0) - (order.get(b.name) ?? 0));

  const warnings = matched
    .filter((p) => p.mode === 'warn')
    .map((p) => `policy ${p.name} (warn) would ${describe(p)}`);
  const enforced = matched.filter((p) => p.mode === 'enforce');
  const deny = enforced.find((p) => p.effect.kind === 'deny');
  if (deny) return { outcome: 'deny', policy: deny, outcomes, warnings };
  let best: Policy | undefined;
  for (const p of enforced) {
    if (p.effect.kind !== 'approval') continue;
    if (!best || (best.effect.kind === 'approval' && p.effect.count > best.effect.count)) best = p;
  }
  if (best && best.effect.kind === 'approval') {
    const { count, groups, expiresMs } = best.effect;
    return {
      outcome: 'approval',
      policy: best,
      approval: { count, groups, expiresMs },
      outcomes,
      warnings,
    };
  }
  const allow = enforced.find((p) => p.effect.kind === 'allow');
  if (allow) return { outcome: 'allow', policy: allow, outcomes, warnings };
  return { outcome: 'none', outcomes, warnings };
}

function describe(p: Policy): string {
  switch (p.effect.kind) {
    case 'deny':
      return `deny: ${p.effect.reason}`;
    case 'approval':
      return `require ${p.effect.count} approval(s) from ${p.effect.groups.join(', ')}`;
    default:
      return p.effect.kind;
  }
}

/** The leaves of a condition result tree, with their fact values and results. */
function flatten(c: ConditionResult | undefined, negate = false): PolicyOutcome['conditions'] {
  if (!c) return [];
  if (c.all) return c.all.flatMap((x) => flatten(x, negate));
  if (c.any) return c.any.flatMap((x) => flatten(x, negate));
  if (c.not) return flatten(c.not, !negate);
  if (c.fact === undefined) return [];
  return [
    {
      fact: c.fact,
      operator: negate ? `not ${c.operator ?? ''}` : (c.operator ?? ''),
      value: c.value,
      factValue: c.factResult,
      // A condition json-rules-engine did not reach (it stops between priority groups) has no result.
      passed: c.result === undefined ? false : negate ? !c.result : c.result,
    },
  ];
}
