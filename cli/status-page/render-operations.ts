/** The status page's operations table: state, verdict, data-loss window, RTO split and step log. */
import { stepLabel } from '../../engine/step-label.js';
import type { OperationView } from '../observe/operation-log.js';
import { escapeHtml as h } from './escape-html.js';
import { formatSeconds, formatTime } from './page-format.js';

/** An operation's error: its first line, the rest (a health check's output) folded away. */
export function errorCell(error: string): string {
  const [first = '', ...rest] = error.trim().split('\n');
  if (rest.length === 0) return h(first);
  return `<details><summary>${h(first)}</summary><pre>${h(rest.join('\n'))}</pre></details>`;
}

/** Healthy, unhealthy or failed (with the error), for drills and failovers; failback: done. */
function verdict(o: OperationView): string {
  if (o.state === 'running') return '<span class="muted">-</span>';
  if (o.state === 'failed')
    return `<span class="breach">failed</span>${o.error ? `: ${errorCell(o.error)}` : ''}`;
  if (o.healthy === true) return '<span class="ok">healthy</span>';
  if (o.healthy === false) return '<span class="breach">unhealthy</span>';
  return o.failoverOpId
    ? `home again <span class="muted">(undid ${h(o.failoverOpId)})</span>`
    : 'done';
}

/**
 * The steps as they were reached, in the words chat uses, each with its time after the start;
 * folded under a count.
 */
function stepLog(o: OperationView): string {
  if (o.steps.length === 0) return '<span class="muted">-</span>';
  const items = o.steps
    .map(
      (s) =>
        `<li>${h(stepLabel(s.step) ?? `${s.step} started`)} <span class="muted">+${formatSeconds(Math.max(0, s.at - o.startedAt) / 1000)}</span></li>`,
    )
    .join('');
  const end =
    o.finishedAt !== undefined
      ? `<li>${o.state} <span class="muted">+${formatSeconds(Math.max(0, o.finishedAt - o.startedAt) / 1000)}</span></li>`
      : '';
  return `<details data-testid="steps"><summary>${o.steps.length} step${o.steps.length === 1 ? '' : 's'}</summary><ol class="steps">${items}${end}</ol></details>`;
}

export function operationRow(o: OperationView): string {
  const state =
    o.state === 'running'
      ? `running${o.step ? ` (${h(o.step)})` : ''}`
      : o.state === 'failed'
        ? `<span class="breach">failed</span>`
        : 'succeeded';
  const rto = o.rto
    ? `<span data-testid="rto-total">${formatSeconds(o.rto.totalMs / 1000)}</span> <span class="muted">${formatSeconds(o.rto.materialiseMs / 1000)} / ${formatSeconds(o.rto.launchMs / 1000)} / ${formatSeconds(o.rto.healthyMs / 1000)}</span>`
    : '<span data-testid="rto-total">-</span>';
  const loss =
    o.dataAgeSeconds !== undefined
      ? `${formatSeconds(o.dataAgeSeconds)}${o.point !== undefined ? ` <span class="muted">point #${o.point}</span>` : ''}`
      : o.point !== undefined
        ? `<span class="muted">point #${o.point}</span>`
        : '-';
  const server = o.server
    ? `<br><span class="muted">${h(`${o.server.provider} ${o.server.id}${o.server.endpoint ? ` at ${o.server.endpoint}` : ''}`)}</span>`
    : '';
  return `<tr data-op="${h(o.opId)}"><td>${h(o.opId)}</td><td>${h(o.app)}</td><td>${h(o.job)}</td><td>${state}${o.cleanedUp ? ' <span class="muted">cleaned up</span>' : ''}</td><td>${h(formatTime(o.startedAt))}</td><td data-testid="verdict">${verdict(o)}${server}</td><td data-testid="data-loss">${loss}</td><td>${rto}</td><td>${stepLog(o)}</td></tr>`;
}

export const OPERATION_HEAD = [
  'Operation',
  'App',
  'Job',
  'State',
  'Started',
  'Verdict',
  'Data-loss window',
  'RTO (materialise / launch / healthy)',
  'Steps',
];
