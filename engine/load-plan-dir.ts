/** Reads every plan file of a directory (the home's plans/), all of them valid or none. */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '../core/errors.js';
import { type PlanParseOptions, parsePlanFile } from './parse-plan-file.js';
import type { Plan } from './plan.js';
import type { PolicyProblem } from './policy.js';

export interface PlanSet {
  plans: Plan[];
  files: string[];
}

/**
 * The plans of `dir`, or every problem found (file:line: reason). A directory that does not exist
 * holds no plans: plans are optional.
 */
export async function loadPlanDir(
  dir: string,
  options: PlanParseOptions = {},
): Promise<{ set?: PlanSet; problems: PolicyProblem[] }> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => /\.ya?ml$/.test(n)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      return { set: { plans: [], files: [] }, problems: [] };
    return {
      problems: [
        { file: dir, line: 0, reason: `cannot read the plan directory: ${errorMessage(err)}` },
      ],
    };
  }
  const plans: Plan[] = [];
  const problems: PolicyProblem[] = [];
  const byName = new Map<string, Plan>();
  for (const name of names) {
    const file = join(dir, name);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      problems.push({ file, line: 0, reason: `cannot read: ${errorMessage(err)}` });
      continue;
    }
    const r = parsePlanFile(text, file, options);
    problems.push(...r.problems);
    if (!r.plan) continue;
    const other = byName.get(r.plan.name);
    if (other) {
      problems.push({
        file,
        line: r.plan.line,
        reason: `plan ${r.plan.name} is also ${other.file}; keep one of the two files`,
      });
      continue;
    }
    byName.set(r.plan.name, r.plan);
    plans.push(r.plan);
  }
  if (problems.length > 0) return { problems };
  return { set: { plans, files: names.map((n) => join(dir, n)) }, problems };
}
