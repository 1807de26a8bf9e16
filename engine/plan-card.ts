/** A plan run as one message: every group and app with its state, the steps between, and its buttons. */
import { formatDuration } from '../core/units.js';
import type { AppRun, PlanJob, StepRun } from '../replicator/jobs/plan-contract.js';
import { phaseText } from '../replicator/jobs/plan-run-state.js';
import type { Action } from './contract.js';

const TITLE = { drill: 'Drill', failover: 'Failover', failback: 'Failback' } as const;

const APP_STATE: Record<AppRun['state'], string> = {
  pending: 'waiting',
  running: 'recovering',
  healthy: 'healthy',
  failed: 'FAILED',
  skipped: 'skipped',
  'rolled-back': 'rolled back',
};

function appLine(a: AppRun, verb: PlanJob['verb']): string {
  const state = a.state === 'healthy' && verb === 'failback' ? 'home' : APP_STATE[a.state];
  const by = a.state === 'skipped' && a.by ? ` by ${a.by}` : '';
  const op = a.opId && a.state !== 'pending' ? ` (${a.opId})` : '';
  const error = a.state === 'failed' && a.error ? `: ${a.error.split('\n')[0]}` : '';
  return `${a.app} ${state}${by}${op}${error}`;
}

function stepText(
  step: PlanJob['groups'][number]['steps'][number],
  r: StepRun | undefined,
): string {
  const what = step.kind === 'hook' ? `hook \`${step.command}\`` : `manual "${step.prompt}"`;
  const state = r?.state ?? 'pending';
  const how =
    state === 'done'
      ? step.kind === 'manual'
        ? `continued by ${r?.by ?? '?'}`
        : 'done'
      : state === 'skipped'
        ? `skipped by ${r?.by ?? '?'}`
        : state === 'failed'
          ? `FAILED: ${r?.detail ?? ''}`
          : state === 'waiting'
            ? 'WAITING for a person'
            : state === 'running'
              ? 'running'
              : 'not yet';
  return `then ${what}: ${how}`;
}

/** The one-line summary of the run: `Failover of plan shop (op-…): running group 2 (api, worker)`. */
export function planSummary(d: PlanJob): string {
  const where = d.run ? phaseText(d, d.run) : 'queued';
  const took = d.run?.endedAt ? ` in ${formatDuration(d.run.endedAt - d.run.startedAt)}` : '';
  return `${TITLE[d.verb]} of plan ${d.plan} (${d.opId}): ${where}${took}`;
}

/** Every group and app as it stands, fences and steps included, then the rollback's lines. */
export function planLines(d: PlanJob): string[] {
  const run = d.run;
  const lines: string[] = [];
  if (d.pointsNote) lines.push(`points: ${d.pointsNote}`);
  const apps = run?.groups.flatMap((g) => g.apps) ?? [];
  const fences = apps.filter((a) => a.fence);
  if (fences.length)
    lines.push(
      `fenced (last group first): ${[...fences]
        .reverse()
        .map((a) => `${a.app} ${a.fence?.fenced ? 'yes' : 'NO'}`)
        .join(', ')}`,
    );
  d.groups.forEach((g, i) => {
    const gr = run?.groups[i];
    const here =
      run && run.at.group === i && !['done', 'rolled-back'].includes(run.phase) ? '▶ ' : '';
    const appsText = g.apps
      .map((app) => {
        const a = gr?.apps.find((x) => x.app === app);
        return a ? appLine(a, d.verb) : `${app} waiting`;
      })
      .join('; ');
    const wait = g.wait.kind === 'delay' ? ` (then ${formatDuration(g.wait.ms)})` : '';
    lines.push(`${here}${i + 1}. ${appsText}${wait}`);
    for (const a of gr?.apps ?? []) for (const l of a.drills ?? []) lines.push(`   ${a.app}: ${l}`);
    g.steps.forEach((s, j) => {
      lines.push(`   ${stepText(s, gr?.steps[j])}`);
    });
  });
  for (const l of run?.rollback?.lines ?? []) lines.push(`rollback: ${l}`);
  return lines;
}

/** The buttons of the run now: Continue at a manual step; Retry, Skip, Roll back after a failure. */
export function planActions(d: PlanJob): Action[] {
  const run = d.run;
  if (!run) return [];
  const rollback: Action = {
    kind: 'rollback',
    label: 'Roll back',
    words: `rollback ${d.opId}`,
    style: 'danger',
    confirm: {
      title: `Roll back the ${d.verb} of plan ${d.plan}?`,
      text:
        d.verb === 'failback'
          ? `The run stops here; apps already failed back stay home.`
          : `Everything this ${d.verb} started is removed, last group first${d.verb === 'failover' ? ': the recovered servers stop, and the sources are unfenced and replicate again' : ''}.`,
      yes: 'Roll back',
    },
  };
  if (run.phase === 'waiting-manual') {
    const step = run.at.step !== undefined ? d.groups[run.at.group]?.steps[run.at.step] : undefined;
    const prompt = step?.kind === 'manual' ? step.prompt : 'Continue';
    return [
      {
        kind: 'continue',
        label: prompt.slice(0, 70),
        words: `continue ${d.opId}`,
        style: 'primary',
      },
      rollback,
    ];
  }
  if (run.phase === 'waiting-decision') {
    const what = run.failure?.app ?? (run.failure?.step !== undefined ? 'the hook' : 'the step');
    return [
      {
        kind: 'retry',
        label: `Retry ${what}`.slice(0, 70),
        words: `retry ${d.opId}`,
        style: 'primary',
      },
      { kind: 'skip', label: `Skip ${what}`.slice(0, 70), words: `skip ${d.opId}` },
      rollback,
    ];
  }
  return [];
}
