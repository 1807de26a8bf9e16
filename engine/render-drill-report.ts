/** Draws a drill report as a picture: a Vega-Lite chart rendered to SVG by vega, then to PNG by resvg. */
import { existsSync } from 'node:fs';
import { Resvg } from '@resvg/resvg-js';
import { parse, View } from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { DrillReport } from './drill-report.js';

/** Fonts tried in order; the first present is the chart's (resvg has no fonts of its own). */
const FONT_FILES = [
  '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf',
  '/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf',
];
const FONT = 'DejaVu Sans';
/** Width of each plot, px; the PNG is this plus axes and legends, at 2x for sharp text in chat. */
const PLOT_WIDTH = 640;
const SCALE = 2;

export interface ReportPicture {
  svg: string;
  png: Buffer;
  /** PNG size in px. */
  width: number;
  height: number;
}

const STEP_COLOURS = { materialise: '#4c78a8', launch: '#f58518', healthy: '#54a24b' };
/** A plan drill's parts: groups in blues and greens, the steps between them in orange. */
const GROUP_COLOURS = ['#4c78a8', '#54a24b', '#72b7b2', '#b279a2', '#9d755d', '#bab0ac'];
const BETWEEN_COLOUR = '#f58518';
const FAILED_COLOUR = '#e45756';

/** One bar segment of the drill panel. */
interface BarPart {
  drill: string;
  step: string;
  seconds: number;
  verdict: string;
  total: number;
  order: number;
}

const drillLabel = (i: number, at: number, app?: string) =>
  `${i + 1}. ${new Date(at).toISOString().slice(5, 16).replace('T', ' ')}${app ? ` ${app}` : ''}`;

/** Each app drill split by step (materialise, launch, healthy), with the step colours. */
function appDrillBars(r: DrillReport): { parts: BarPart[]; domain: string[]; range: string[] } {
  const parts = r.drills.flatMap((d, i) => {
    const label = drillLabel(i, d.at, r.apps.length > 1 ? d.app : undefined);
    const verdict = d.ok
      ? `PASS${d.dataLossSeconds !== undefined ? `, loss ${formatSeconds(d.dataLossSeconds)}` : ''}`
      : 'FAIL';
    if (!d.ok || !d.rto)
      return [{ drill: label, step: 'failed', seconds: 0, verdict, total: 0, order: 0 }];
    const total = d.rto.totalMs / 1000;
    return (
      [
        ['materialise', d.rto.materialiseMs],
        ['launch', d.rto.launchMs],
        ['healthy', d.rto.healthyMs],
      ] as const
    ).map(([step, ms], order) => ({
      drill: label,
      step,
      seconds: ms / 1000,
      verdict,
      total,
      order,
    }));
  });
  return {
    parts,
    domain: ['materialise', 'launch', 'healthy', 'failed'],
    range: [...Object.values(STEP_COLOURS), FAILED_COLOUR],
  };
}

/** Each plan drill split by group and by the steps between groups, a colour per part. */
function planDrillBars(r: DrillReport): { parts: BarPart[]; domain: string[]; range: string[] } {
  const drills = r.planDrills ?? [];
  const parts = drills.flatMap((d, i) => {
    const label = drillLabel(i, d.at);
    const verdict = d.ok
      ? `PASS${d.skipped.length ? `, ${d.skipped.join(', ')} skipped` : ''}`
      : `FAIL: ${d.error ?? 'failed'}`.slice(0, 60);
    const total = d.parts.reduce((n, p) => n + p.ms, 0) / 1000;
    const bars = d.parts.map((p, order) => ({
      drill: label,
      step: p.label,
      seconds: p.ms / 1000,
      verdict,
      total,
      order,
    }));
    return d.ok || bars.length
      ? bars
      : [{ drill: label, step: 'failed', seconds: 0, verdict, total: 0, order: 0 }];
  });
  const domain: string[] = [];
  const range: string[] = [];
  const groups = r.plan?.groups ?? [];
  for (const [i, apps] of groups.entries()) {
    domain.push(`group ${i + 1} (${apps.join(', ')})`);
    range.push(GROUP_COLOURS[i % GROUP_COLOURS.length] as string);
    if (i === groups.length - 1) break; // no steps after the last group
    domain.push(`after group ${i + 1}`);
    range.push(BETWEEN_COLOUR);
  }
  // A part the plan no longer names (the file changed since): drawn grey.
  for (const p of parts)
    if (!domain.includes(p.step)) {
      domain.push(p.step);
      range.push(p.step === 'failed' ? FAILED_COLOUR : '#999999');
    }
  return { parts, domain, range };
}

/** The Vega-Lite spec of a report: RPO with objective and breaches on top, drills' RTO by step below. */
export function reportSpec(r: DrillReport): TopLevelSpec {
  const rpo = r.samples.map((s) => ({ app: s.app, time: s.time, lag: s.lagSeconds }));
  const objectives = Object.entries(r.objectives).map(([app, seconds]) => ({ app, seconds }));
  const breaches = r.breaches.map((b) => ({ app: b.app, from: b.from, to: b.to }));
  const byPlan = (r.planDrills?.length ?? 0) > 0;
  const bars = byPlan ? planDrillBars(r) : appDrillBars(r);
  const steps = bars.parts;
  const below = byPlan || r.apps.length > 1;
  const verdicts = [...new Map(steps.map((s) => [s.drill, s])).values()];
  const time = {
    field: 'time',
    type: 'temporal',
    title: null,
    scale: { type: 'utc', domain: [r.from, r.to] },
    axis: { format: '%b %d', labelOverlap: true },
  } as const;
  const rpoPanel = {
    width: PLOT_WIDTH,
    height: 180,
    title: { text: 'RPO (seconds behind) — objective dashed, breaches shaded', anchor: 'start' },
    layer: [
      {
        data: { values: breaches },
        mark: { type: 'rect', color: '#e45756', opacity: 0.25 },
        encoding: {
          x: { field: 'from', type: 'temporal' },
          x2: { field: 'to' },
        },
      },
      {
        data: { values: rpo },
        mark: { type: 'line', strokeWidth: 1.5, interpolate: 'step-after' },
        encoding: {
          x: time,
          y: { field: 'lag', type: 'quantitative', title: 'seconds' },
          color: { field: 'app', type: 'nominal', title: 'app' },
        },
      },
      {
        data: { values: objectives },
        mark: { type: 'rule', strokeDash: [6, 4], color: '#e45756', strokeWidth: 1.5 },
        encoding: { y: { field: 'seconds', type: 'quantitative' } },
      },
    ],
  };
  const drillPanel = {
    width: PLOT_WIDTH,
    height: Math.max(60, 26 * verdicts.length),
    title: {
      text: byPlan
        ? 'Plan drills: RTO by group and the steps between, verdict'
        : 'Drills: RTO by step, verdict and data-loss window',
      anchor: 'start',
    },
    data: { values: steps },
    layer: [
      {
        mark: { type: 'bar', height: 16 },
        encoding: {
          y: {
            field: 'drill',
            type: 'nominal',
            title: null,
            sort: null,
            axis: { labelLimit: 260 },
          },
          x: { field: 'seconds', type: 'quantitative', title: 'seconds to healthy', stack: 'zero' },
          order: { field: 'order' },
          color: {
            field: 'step',
            type: 'nominal',
            title: below ? null : 'step',
            scale: { domain: bars.domain, range: bars.range },
            // A plan's parts have long names, several apps' verdicts too: below, clear of them.
            ...(below ? { legend: { orient: 'bottom', columns: byPlan ? 3 : 4 } } : {}),
          },
        },
      },
      {
        data: { values: verdicts },
        mark: { type: 'text', align: 'left', dx: 4, fontSize: 11 },
        encoding: {
          y: { field: 'drill', type: 'nominal', sort: null },
          x: { field: 'total', type: 'quantitative' },
          text: { field: 'verdict' },
          color: { value: '#222' },
        },
      },
    ],
  };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: `Drill report: ${r.subject}`,
      subtitle: wrap(r.summary, 110),
      anchor: 'start',
      fontSize: 16,
    },
    background: 'white',
    padding: 12,
    config: { font: FONT, view: { stroke: '#ddd' } },
    vconcat: steps.length ? [rpoPanel, drillPanel] : [rpoPanel],
    resolve: { scale: { color: 'independent' } },
  } as TopLevelSpec;
}

/** Renders a report to SVG and PNG on this machine, with the fonts found here. */
export async function renderDrillReport(r: DrillReport): Promise<ReportPicture> {
  const view = new View(parse(compile(reportSpec(r)).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  const fontFiles = FONT_FILES.filter((f) => existsSync(f));
  const rendered = new Resvg(svg, {
    background: 'white',
    fitTo: { mode: 'zoom', value: SCALE },
    font: {
      // Without a font file here, the system's fonts are searched instead (slower).
      loadSystemFonts: fontFiles.length === 0,
      fontFiles,
      defaultFontFamily: FONT,
      sansSerifFamily: FONT,
    },
  }).render();
  return { svg, png: rendered.asPng(), width: rendered.width, height: rendered.height };
}

function formatSeconds(s: number): string {
  return s >= 3600
    ? `${(s / 3600).toFixed(1)}h`
    : s >= 60
      ? `${(s / 60).toFixed(1)}m`
      : `${s.toFixed(0)}s`;
}

/** Splits a long line at "; " into lines of at most about `n` characters (a subtitle does not wrap itself). */
function wrap(text: string, n: number): string[] {
  const out: string[] = [];
  let line = '';
  for (const part of text.split('; ')) {
    const next = line ? `${line}; ${part}` : part;
    if (next.length > n && line) {
      out.push(`${line};`);
      line = part;
    } else line = next;
  }
  if (line) out.push(line);
  return out;
}
