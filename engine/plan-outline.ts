/** What an operation on a plan would do, step by step, as plain lines (dr plan show|explain). */
import { formatDuration } from '../core/units.js';
import { type Plan, type PlanStep, planApps, walkGroups } from './plan.js';

export type PlanVerb = 'drill' | 'failover' | 'failback';

/** What the outline needs of each app in dr.yaml: whether it has a fence command. */
export type AppFences = Readonly<Record<string, { fence?: string | undefined }>>;

function stepLine(s: PlanStep): string {
  return s.kind === 'hook'
    ? `run hook \`${s.command}\` (up to ${formatDuration(s.timeoutMs)})`
    : `wait for a person to press "${s.prompt}"`;
}

/**
 * The numbered steps of `verb` on `plan`. Failover fences the sources first, last group first (the
 * web tier stops writing before the database it writes to), then recovers the groups in order;
 * failback walks the groups back to front; a drill never fences (it never touches the sources).
 */
export function planOutline(plan: Plan, verb: PlanVerb, apps: AppFences): string[] {
  const out: string[] = [];
  const add = (line: string) => out.push(`${out.length + 1}. ${line}`);
  if (verb === 'failover') {
    const fenced = [...planApps(plan)].reverse();
    for (const app of fenced)
      add(
        apps[app]?.fence
          ? `fence ${app}'s source (\`${apps[app]?.fence}\`)`
          : `fence ${app}'s source: no fence command in dr.yaml, recorded as unfenced`,
      );
  }
  for (const { group: g, steps } of walkGroups(plan, verb)) {
    const action = verb === 'failback' ? 'fail back' : verb === 'drill' ? 'drill' : 'fail over';
    const wait =
      g.wait.kind === 'healthy' ? 'each healthy' : `then wait ${formatDuration(g.wait.ms)}`;
    add(`${action} ${g.apps.join(', ')} (${wait})`);
    for (const s of steps) add(stepLine(s));
  }
  return out;
}
