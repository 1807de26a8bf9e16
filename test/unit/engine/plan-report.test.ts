import { describe, expect, it } from 'vitest';
import { breachesOf, type DrillReport, summaryLine } from '../../../engine/drill-report.js';
import { planDrillOf, type ReportPlanDrill } from '../../../engine/plan-drills.js';
import { renderDrillReport } from '../../../engine/render-drill-report.js';
import { planResult } from '../../helpers/plan-result.js';
import { expectReportPicture } from '../../helpers/png-pixels.js';

const DAY = 86_400_000;
const to = Date.UTC(2026, 11, 7, 6, 0, 0);
const from = to - 30 * DAY;

describe('plan drills in a report', () => {
  it('splits a plan run into each group and the steps between them', () => {
    const d = planDrillOf({ opId: 'op-plan1', ok: true, result: planResult(1000) }, 70_000);
    expect(d).toEqual({
      opId: 'op-plan1',
      at: 70_000,
      ok: true,
      parts: [
        { label: 'group 1 (db)', ms: 40_000 },
        { label: 'after group 1', ms: 5_000 },
        { label: 'group 2 (web)', ms: 20_000 },
      ],
      totalMs: 66_000,
      skipped: [],
    });
  });

  it('a failed, rolled-back or skipping run, and runs that are not drills', () => {
    const failed = planResult(0, { outcome: 'rolled-back' });
    failed.run.groups[1] = {
      apps: [{ app: 'web', state: 'failed', ops: ['op-b'] }],
      steps: [],
    } as never;
    (failed.run as Record<string, unknown>).failure = { group: 1, error: 'web: check failed' };
    const f = planDrillOf({ opId: 'op-x', ok: true, result: failed }, 1);
    expect(f?.ok).toBe(false);
    expect(f?.error).toBe('web: check failed');
    expect(f?.parts.map((p) => p.label)).toEqual(['group 1 (db)', 'after group 1']);
    const skipping = planResult(0);
    skipping.run.groups[1]?.apps.splice(0, 1, { app: 'web', state: 'skipped', ops: [] });
    expect(planDrillOf({ ok: true, result: skipping }, 1)?.skipped).toEqual(['web']);
    // A failover plan is not a drill; a run that failed without a result is judged by its record.
    expect(planDrillOf({ ok: true, result: planResult(0, { verb: 'failover' }) }, 1)).toBe(
      undefined,
    );
    expect(planDrillOf({ ok: false, error: { message: 'no worker' } }, 1)).toBe(undefined);
    expect(planDrillOf({ ok: false, error: { message: 'no worker' } }, 1, 'drill')).toMatchObject({
      ok: false,
      error: 'no worker',
      parts: [],
    });
  });
});

function planReport(planDrills: ReportPlanDrill[]): DrillReport {
  const samples = [];
  for (let t = from; t <= to; t += 3_600_000) {
    const hour = (t - from) / 3_600_000;
    samples.push({ app: 'db', time: t, lagSeconds: hour >= 100 && hour < 110 ? 200 : 12 });
    samples.push({ app: 'web', time: t, lagSeconds: 25 + (hour % 7) });
  }
  const r: DrillReport = {
    subject: 'shop',
    plan: { groups: [['db'], ['web']] },
    apps: ['db', 'web'],
    from,
    to,
    days: 30,
    objectives: { db: 60, web: 60 },
    samples,
    breaches: [
      ...breachesOf(
        samples.filter((s) => s.app === 'db'),
        60,
      ),
    ],
    drills: [],
    planDrills,
    summary: '',
  };
  r.summary = summaryLine(r, 10 / 720);
  return r;
}

describe('a plan’s report picture', () => {
  it('draws every app’s RPO and each plan drill split by group, with its verdict', async () => {
    const runs = [5, 12, 19, 26].map(
      (d, i) =>
        planDrillOf(
          {
            opId: `op-p${i}`,
            ok: true,
            result:
              i === 2 ? planResult(0, { outcome: 'rolled-back' }) : planResult(from + d * DAY),
          },
          from + d * DAY + 66_000,
        ) as ReportPlanDrill,
    );
    const r = planReport(runs);
    expect(r.summary).toMatch(
      /^shop, last 30 d; 4 plan drill\(s\), 3 passed; RTO median 66s \(last 66s\)/,
    );
    const pic = await renderDrillReport(r);
    // Its size, and ink in the RPO plot and in the drill bars.
    const png = expectReportPicture(pic);
    // Group 1 blue, group 2 green, the hook between them orange.
    expect(png.coloured([0x4c, 0x78, 0xa8])).toBeGreaterThan(500);
    expect(png.coloured([0x54, 0xa2, 0x4b])).toBeGreaterThan(500);
    expect(png.coloured([0xf5, 0x85, 0x18])).toBeGreaterThan(100);
    expect(pic.svg).toContain('group 1 (db)');
    expect(pic.svg).toContain('after group 1');
    expect(pic.svg).toContain('Plan drills');
    expect(pic.svg).toContain('FAIL');
  });

  it('says when neither the plan nor its apps were drilled', () => {
    const r = planReport([]);
    expect(r.summary).toMatch(/^shop, last 30 d; no drills of the plan or its apps;/);
  });
});
