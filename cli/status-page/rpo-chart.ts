import { escapeHtml } from './escape-html.js';

export interface RpoChartInput {
  app: string;
  /** [ms since epoch, lag seconds or null], oldest first. */
  history: Array<[number, number | null]>;
  objectiveSeconds?: number;
  /**
   * The chart spans at most [end - hours, end]; it starts at the first sample when the history
   * is shorter (a demo minutes old fills the chart instead of its last pixels), 10 min at least.
   */
  end: number;
  hours: number;
}

/** Shortest span the chart shows, so a few samples are not stretched edge to edge. */
const MIN_SPAN_MS = 10 * 60_000;
/** Tick steps for the time axis: the first that gives at most 8 ticks is used. */
const STEPS_MS = [
  60_000,
  5 * 60_000,
  10 * 60_000,
  30 * 60_000,
  3_600_000,
  2 * 3_600_000,
  4 * 3_600_000,
];

/** The start of the chart: the window's, or the first sample's when that is later. */
export function chartStart(
  history: Array<[number, number | null]>,
  end: number,
  hours: number,
): number {
  const windowStart = end - hours * 3_600_000;
  const first = history.find(([t]) => t >= windowStart)?.[0];
  if (first === undefined) return windowStart;
  return Math.max(windowStart, Math.min(first, end - MIN_SPAN_MS));
}

function ago(ms: number): string {
  return ms >= 3_600_000 ? `-${+(ms / 3_600_000).toFixed(1)}h` : `-${Math.round(ms / 60_000)}m`;
}

/** Chart width in px; the status page's stylesheet caps .rpo-chart at the same 560px (the CSP allows no style attribute). */
const W = 560;
const H = 140;
const PAD = { left: 44, right: 8, top: 8, bottom: 20 };

/** Round upper bounds for the y axis, in seconds: halves of them label well too. */
const TOPS = [
  1, 2, 4, 10, 20, 40, 60, 120, 240, 600, 1200, 2400, 3600, 7200, 14_400, 43_200, 86_400,
];

function niceMax(v: number): number {
  return TOPS.find((t) => t >= v) ?? Math.ceil(v / 86_400) * 86_400;
}

function label(seconds: number): string {
  return seconds >= 3600
    ? `${+(seconds / 3600).toFixed(1)}h`
    : seconds >= 60
      ? `${+(seconds / 60).toFixed(1)}m`
      : `${+seconds.toFixed(1)}s`;
}

/**
 * The RPO of one app over the window as an inline SVG: a line per run of samples (a gap where
 * the app had no consistent point), the objective dashed when there is one.
 */
export function rpoChart({ app, history, objectiveSeconds, end, hours }: RpoChartInput): string {
  const start = chartStart(history, end, hours);
  const span = end - start;
  const inWindow = history.filter(([t]) => t >= start && t <= end);
  const values = inWindow.map(([, v]) => v).filter((v): v is number => v !== null);
  const top = niceMax(Math.max(...values, objectiveSeconds ?? 0, 1) * 1.05);
  const x = (t: number) => PAD.left + ((t - start) / (end - start)) * (W - PAD.left - PAD.right);
  const y = (v: number) => PAD.top + (1 - v / top) * (H - PAD.top - PAD.bottom);
  const runs: string[][] = [];
  let run: string[] = [];
  for (const [t, v] of inWindow) {
    if (v === null) {
      if (run.length) runs.push(run);
      run = [];
    } else run.push(`${x(t).toFixed(1)},${y(v).toFixed(1)}`);
  }
  if (run.length) runs.push(run);
  const lines = runs
    .map((r) =>
      r.length === 1
        ? `<circle class="rpo-dot" cx="${r[0]?.split(',')[0]}" cy="${r[0]?.split(',')[1]}" r="2"/>`
        : `<polyline class="rpo-line" points="${r.join(' ')}"/>`,
    )
    .join('');
  const goal =
    objectiveSeconds !== undefined
      ? `<line class="rpo-objective" x1="${PAD.left}" x2="${W - PAD.right}" y1="${y(objectiveSeconds).toFixed(1)}" y2="${y(objectiveSeconds).toFixed(1)}"/><text class="axis" x="${W - PAD.right - 4}" y="${(y(objectiveSeconds) - 3).toFixed(1)}" text-anchor="end">objective ${label(objectiveSeconds)}</text>`
      : '';
  const ticks = [0, top / 2, top]
    .map(
      (v) =>
        `<text class="axis" x="${PAD.left - 4}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${label(v)}</text><line class="grid" x1="${PAD.left}" x2="${W - PAD.right}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}"/>`,
    )
    .join('');
  const step = STEPS_MS.find((st) => span / st <= 8) ?? 6 * 3_600_000;
  const timeTicks = Array.from({ length: Math.floor(span / step) + 1 }, (_, i) => end - i * step)
    .map(
      (t) =>
        `<text class="axis" x="${x(t).toFixed(1)}" y="${H - 4}" text-anchor="${t === end ? 'end' : 'middle'}">${t === end ? 'now' : ago(end - t)}</text>`,
    )
    .join('');
  const empty =
    values.length === 0
      ? `<text class="axis" x="${W / 2}" y="${H - PAD.bottom - 14}" text-anchor="middle">no RPO samples in the last ${hours} h</text>`
      : '';
  return `<svg class="rpo-chart" data-app="${escapeHtml(app)}" data-samples="${values.length}" viewBox="0 0 ${W} ${H}" width="100%" role="img" aria-label="RPO of ${escapeHtml(app)} over the last ${ago(span).slice(1)}">${ticks}${timeTicks}${goal}${lines}${empty}</svg>`;
}
