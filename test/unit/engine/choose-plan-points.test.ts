import { describe, expect, it } from 'vitest';
import { choosePlanPoints, type PointAt } from '../../../engine/choose-plan-points.js';

/** Points at these seconds after a fixed start; ids count from 1 per app. */
const T0 = Date.parse('2026-12-07T03:00:00Z');
const at = (...seconds: number[]): PointAt[] =>
  seconds.map((s, i) => ({ id: i + 1, timeMs: T0 + s * 1000 }));
const consistent = { kind: 'plan-consistent' } as const;

describe('choosePlanPoints', () => {
  it('latest: each app its newest point, skew between them', () => {
    const r = choosePlanPoints({ kind: 'latest' }, { db: at(0, 10, 20), web: at(5, 27) });
    expect(r).toMatchObject({ ok: true, chosen: { db: { id: 3 }, web: { id: 2 } }, skewMs: 7000 });
  });

  it('plan-consistent: nothing newer than the app that is furthest behind', () => {
    // db's newest is 20 s; web has points at 18 and 27: web gets 18, not 27.
    const r = choosePlanPoints(consistent, {
      db: at(0, 10, 20),
      web: at(5, 18, 27),
      api: at(19, 25),
    });
    expect(r).toEqual({
      ok: true,
      chosen: {
        db: { id: 3, timeMs: T0 + 20_000 },
        web: { id: 2, timeMs: T0 + 18_000 },
        api: { id: 1, timeMs: T0 + 19_000 },
      },
      instantMs: T0 + 20_000,
      skewMs: 2000,
    });
  });

  it('plan-consistent equals latest when every newest point is at one instant', () => {
    const r = choosePlanPoints(consistent, { db: at(0, 30), web: at(10, 30) });
    expect(r).toMatchObject({ ok: true, chosen: { db: { id: 2 }, web: { id: 2 } }, skewMs: 0 });
  });

  it('no common instant: an app whose oldest point is newer than another app’s newest', () => {
    const r = choosePlanPoints(consistent, { db: at(0, 10), web: at(40, 50) });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.reason).toContain("web's oldest point");
    expect(r.reason).toContain("db's newest");
    expect(r.remedy).toContain('wait for a newer point of db');
  });

  it('maxSkew: steps back to an older instant where every point is close enough', () => {
    // web is furthest behind (40 s): at 40 s db has 38 s, 2 s apart.
    const r = choosePlanPoints(
      { kind: 'plan-consistent', maxSkewMs: 5000 },
      { db: at(0, 38, 100), web: at(40) },
    );
    expect(r).toMatchObject({
      ok: true,
      chosen: { db: { id: 2 }, web: { id: 1 } },
      instantMs: T0 + 40_000,
      skewMs: 2000,
    });
  });

  it('maxSkew: no instant has every app close enough', () => {
    const r = choosePlanPoints(
      { kind: 'plan-consistent', maxSkewMs: 5000 },
      { db: at(0, 100), web: at(50) },
    );
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(/within 5s/);
  });

  it('an app without points stops the choice, naming the app', () => {
    for (const policy of [{ kind: 'latest' } as const, consistent]) {
      const r = choosePlanPoints(policy, { db: at(0), web: [] });
      expect(r).toMatchObject({ ok: false, reason: 'no recovery point for web' });
    }
  });

  it('the order the gateway lists points in does not matter', () => {
    const shuffled = [...at(0, 10, 20)].reverse();
    const r = choosePlanPoints(consistent, { db: shuffled, web: at(15) });
    expect(r).toMatchObject({ ok: true, chosen: { db: { id: 2 }, web: { id: 1 } }, skewMs: 5000 });
  });
});
