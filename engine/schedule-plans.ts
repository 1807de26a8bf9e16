/** `schedule.plans` of a policy file: the plans a schedule runs as plans, checked. */
import { closest } from './closest.js';

const NAME = /^[a-z0-9][a-z0-9-]{0,79}$/;

/**
 * The plan names of `schedule.plans` (`raw`, a name or a list), or the problem with them. A
 * schedule runs the plans it names or the apps its `when` selects, never both; with `known` (the
 * plans of the home), every name must be one of them.
 */
export function schedulePlans(
  raw: unknown,
  hasWhen: boolean,
  known: ReadonlySet<string> | undefined,
): { names?: string[]; problem?: string } {
  if (raw === undefined) return {};
  const list = Array.isArray(raw) ? raw : [raw];
  const bad = list.find((n) => typeof n !== 'string' || !NAME.test(n));
  if (list.length === 0 || bad !== undefined)
    return {
      problem: `schedule.plans: expected plan names like [shop]${bad !== undefined ? `, not ${JSON.stringify(bad)}` : ''}`,
    };
  if (hasWhen)
    return {
      problem:
        'schedule.plans: a schedule runs the plans it names or the apps its `when` selects, not both; drop `when`, or put the apps in a policy of their own',
    };
  const names = [...new Set(list as string[])];
  const unknown = known ? names.filter((n) => !known.has(n)) : [];
  if (known && unknown.length > 0) {
    const problems = unknown.map((name) => {
      const near = closest(name, [...known]);
      return `no plan "${name}"${near ? ` (did you mean ${near}?)` : ''}`;
    });
    return {
      problem: `schedule.plans: ${problems.join(', ')}; plans in plans/: ${[...known].join(', ') || '(none: write plans/NAME.yaml first, see docs/plans.md)'}`,
    };
  }
  return { names };
}
