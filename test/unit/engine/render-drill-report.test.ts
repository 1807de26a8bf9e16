import { describe, expect, it } from 'vitest';
import {
  breachesOf,
  type DrillReport,
  downsample,
  type ReportSample,
  summaryLine,
} from '../../../engine/drill-report.js';
import { renderDrillReport } from '../../../engine/render-drill-report.js';
import { expectReportPicture, readPng } from '../../helpers/png-pixels.js';

const DAY = 86_400_000;
const to = Date.UTC(2026, 11, 7, 6, 0, 0);
const from = to - 30 * DAY;

function report(over: Partial<DrillReport> = {}): DrillReport {
  const samples: ReportSample[] = [];
  for (let t = from; t <= to; t += 3_600_000) {
    const hour = (t - from) / 3_600_000;
    // Mostly 20-40 s behind, with a 10-hour stretch at 300 s around day 12.
    const lag = hour >= 288 && hour < 298 ? 300 : 20 + (hour % 20);
    samples.push({ app: 'web', time: t, lagSeconds: hour >= 500 && hour < 505 ? null : lag });
  }
  const r: DrillReport = {
    subject: 'web',
    apps: ['web'],
    from,
    to,
    days: 30,
    objectives: { web: 60 },
    samples,
    breaches: breachesOf(samples, 60),
    drills: [7, 14, 21, 28].map((d, i) => ({
      app: 'web',
      opId: `op-${i}`,
      at: from + d * DAY,
      ok: i !== 2,
      ...(i !== 2
        ? {
            rto: {
              materialiseMs: 40_000 + i * 5000,
              launchMs: 20_000,
              healthyMs: 15_000,
              totalMs: 80_000 + i * 5000,
            },
            dataLossSeconds: 30 + i,
          }
        : { error: 'health check failed' }),
    })),
    summary: '',
    ...over,
  };
  r.summary = over.summary ?? summaryLine(r, 10 / 720);
  return r;
}

describe('drill report data', () => {
  it('finds breaches as runs over the objective', () => {
    const s = (time: number, lag: number | null): ReportSample => ({
      app: 'a',
      time,
      lagSeconds: lag,
    });
    expect(breachesOf([s(0, 10), s(1, 70), s(2, 80), s(3, 10), s(4, 90)], 60)).toEqual([
      { app: 'a', from: 1, to: 3 },
      { app: 'a', from: 4, to: 4 },
    ]);
    expect(breachesOf([s(0, null), s(1, 10)], 60)).toEqual([]);
  });

  it('downsamples keeping each bucket’s highest lag', () => {
    const series: ReportSample[] = Array.from({ length: 1000 }, (_, i) => ({
      app: 'a',
      time: i,
      lagSeconds: i === 503 ? 999 : 1,
    }));
    const out = downsample(series, 0, 1000, 100);
    expect(out.length).toBeLessThanOrEqual(101);
    expect(out.some((s) => s.lagSeconds === 999)).toBe(true);
  });

  it('says drills, passes, RTO, data loss and breaches in one line', () => {
    const line = report().summary;
    expect(line).toContain('web, last 30 d');
    expect(line).toContain('4 drill(s), 3 passed');
    expect(line).toMatch(/RTO median \d/);
    expect(line).toContain('data loss at most 33s');
    expect(line).toContain('1 breach(es)');
    expect(summaryLine(report({ drills: [], samples: [], breaches: [] }), undefined)).toBe(
      'web, last 30 d; no drills; no RPO history in the period',
    );
  });
});

describe('renderDrillReport', () => {
  it('draws RPO with breaches shaded and each drill’s RTO by step into a PNG', async () => {
    const pic = await renderDrillReport(report());
    // Its size, and ink in the RPO plot and in the drill bars.
    const png = expectReportPicture(pic);
    // Each step has its colour: materialise blue, launch orange, healthy green.
    expect(png.coloured([0x4c, 0x78, 0xa8])).toBeGreaterThan(500);
    expect(png.coloured([0xf5, 0x85, 0x18])).toBeGreaterThan(500);
    expect(png.coloured([0x54, 0xa2, 0x4b])).toBeGreaterThan(500);
    // Text was drawn with a real font: the SVG says the verdicts.
    expect(pic.svg).toContain('PASS, loss 30s');
    expect(pic.svg).toContain('FAIL');
  });

  it('draws a report with no drills and no history as one labelled panel', async () => {
    const pic = await renderDrillReport(
      report({ drills: [], samples: [], breaches: [], summary: 'web, last 30 d; no drills' }),
    );
    const png = readPng(pic.png);
    expect(png.height).toBeLessThan(700);
    expect(png.inked({ x0: 0, y0: 0, x1: 1, y1: 0.2 })).toBeGreaterThan(200); // the title
    expect(pic.svg).toContain('no drills');
  });
});
