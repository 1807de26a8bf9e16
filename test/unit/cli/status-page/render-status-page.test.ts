import { describe, expect, it } from 'vitest';
import { foldOperations } from '../../../../cli/observe/operation-log.js';
import { formatSeconds, renderStatusPage } from '../../../../cli/status-page/render-status-page.js';
import { rpoChart } from '../../../../cli/status-page/rpo-chart.js';
import { downsample, type StatusSnapshot } from '../../../../cli/status-page/status-snapshot.js';

const snapshot = (over: Partial<StatusSnapshot>): StatusSnapshot => ({
  generatedAt: '2026-11-29T01:00:00.000Z',
  windowHours: 6,
  apps: [],
  operations: [],
  approvals: [],
  alerts: [],
  problems: [],
  ...over,
});

describe('status page rendering', () => {
  it('escapes text that came from chat or Redis', () => {
    const html = renderStatusPage(
      snapshot({
        approvals: [
          {
            id: 'A-1',
            opId: 'op-x1',
            app: 'web',
            verb: 'failover',
            requestedBy: '<script>alert(1)</script>',
            have: 0,
            need: 2,
            groups: ['sre-oncall'],
            expiresAt: '2026-11-29T02:00:00.000Z',
          },
        ],
        problems: ['gateway said "<b>no</b>"'],
      }),
    );
    expect(html).not.toContain('<script>alert(1)');
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).toContain('&quot;&lt;b&gt;no&lt;/b&gt;&quot;');
  });

  it('marks an RPO above the objective as a breach', () => {
    const app = {
      app: 'web',
      phase: 'continuous',
      lastPoint: null,
      lastFreezeMs: null,
      publishedAt: '2026-11-29T01:00:00.000Z',
      stale: false,
      history: [],
      points: [],
      objectiveSeconds: 60,
      agent: { host: 'shop-1', pid: 42, lastSeen: '2026-11-29T00:59:58.000Z', clockOffsetMs: 0 },
      trackers: { data: { kind: 'trace' as const } },
      backlogBytes: 0,
      throughputBytesPerSec: 4096,
      storedBytes: 3 * 1024 * 1024,
      pointCount: 12,
    };
    expect(renderStatusPage(snapshot({ apps: [{ ...app, rpoSeconds: 94 }] }))).toContain(
      '<span class="breach" data-testid="rpo">1m 34s</span>',
    );
    expect(renderStatusPage(snapshot({ apps: [{ ...app, rpoSeconds: 4 }] }))).toContain(
      '<span class="ok" data-testid="rpo">4.0 s</span>',
    );
    // A failed-over app is paused: its last point ages, which is no breach.
    const paused = renderStatusPage(
      snapshot({ apps: [{ ...app, phase: 'paused', rpoSeconds: 94 }] }),
    );
    expect(paused).toContain(
      '<span class="muted" data-testid="rpo">1m 34s</span> <span class="muted">(not replicating)</span>',
    );
  });

  it('says a paused or failed-over app raises no RPO alert, and marks a failed-over one', () => {
    const app = {
      app: 'web',
      phase: 'paused',
      rpoSeconds: 900,
      lastPoint: null,
      lastFreezeMs: null,
      publishedAt: '2026-11-29T01:00:00.000Z',
      stale: false,
      history: [],
      points: [],
      objectiveSeconds: 60,
      agent: null,
      trackers: {},
      backlogBytes: 0,
      throughputBytesPerSec: 0,
      storedBytes: 0,
      pointCount: 0,
    };
    const paused = renderStatusPage(snapshot({ apps: [{ ...app, protection: 'paused' }] }));
    expect(paused).toContain('<span class="muted">(not replicating; no RPO alerts)</span>');
    expect(paused).not.toContain('data-testid="protection"');
    const over = renderStatusPage(snapshot({ apps: [{ ...app, protection: 'failed-over' }] }));
    expect(over).toContain(
      '<span class="phase phase-paused" data-testid="protection">failed over</span>',
    );
    expect(over).not.toContain('class="breach"');
  });

  it("folds a failed health check's output under the error's first line", () => {
    const html = renderStatusPage(
      snapshot({
        operations: [
          {
            opId: 'op-9',
            app: 'web',
            job: 'drill',
            state: 'failed',
            startedAt: Date.parse('2026-11-29T00:59:00Z'),
            error: 'health check failed: exit 1\nline 2\nline 3 <b>',
          },
        ],
      }),
    );
    expect(html).toContain(
      '<details><summary>health check failed: exit 1</summary><pre>line 2\nline 3 &lt;b&gt;</pre></details>',
    );
  });

  it("shows each app's agent, tracker and replica for the on-call engineer", () => {
    const html = renderStatusPage(
      snapshot({
        apps: [
          {
            app: 'web',
            phase: 'continuous',
            rpoSeconds: 1.2,
            lastPoint: null,
            lastFreezeMs: null,
            publishedAt: '2026-11-29T01:00:00.000Z',
            stale: false,
            history: [],
            points: [],
            agent: {
              host: 'shop-1',
              pid: 42,
              lastSeen: '2026-11-29T00:59:58.000Z',
              clockOffsetMs: 0,
            },
            trackers: { data: { kind: 'trace' } },
            backlogBytes: 0,
            throughputBytesPerSec: 4096,
            storedBytes: 3 * 1024 * 1024,
            pointCount: 12,
          },
        ],
      }),
    );
    expect(html).toContain(
      '<td data-testid="agent">shop-1 <span class="muted">pid 42, heard 2.0 s ago</span></td>',
    );
    expect(html).toContain('data: trace');
    expect(html).toContain(
      '3.0 MiB stored <span class="muted">· 12 points · backlog 0 B · 4.0 KiB/s</span>',
    );
    expect(html).toContain('up to date');
  });

  it('formats durations for people', () => {
    expect(formatSeconds(null)).toBe('-');
    expect(formatSeconds(2.14)).toBe('2.1 s');
    expect(formatSeconds(42)).toBe('42 s');
    expect(formatSeconds(95)).toBe('1m 35s');
    expect(formatSeconds(7260)).toBe('2h 1m');
  });

  it('draws samples outside the window nowhere and the objective as a line', () => {
    const end = 10 * 3_600_000;
    const svg = rpoChart({
      app: 'web',
      history: [
        [end - 7 * 3_600_000, 50],
        [end - 3_600_000, 2],
        [end - 1_800_000, 3],
      ],
      objectiveSeconds: 60,
      end,
      hours: 6,
    });
    expect(svg).toContain('data-samples="2"');
    expect(svg).toContain('class="rpo-objective"');
    expect(svg).toContain('objective 1m');
  });
});

describe('RPO history downsampling', () => {
  const s = (time: number, lagSeconds: number | null) => ({
    time,
    lagSeconds,
    phase: 'continuous',
  });

  it('keeps one point per slice, with the worst RPO of the slice', () => {
    const samples = [s(0, 1), s(10, 9), s(20, 2), s(100, 3), s(110, 1)];
    expect(downsample(samples, 0, 200, 2)).toEqual([
      [20, 9],
      [110, 3],
    ]);
  });

  it('marks a slice without a consistent point at any sample as a gap', () => {
    expect(downsample([s(0, 1), s(10, null), s(20, 4)], 0, 100, 1)).toEqual([[20, null]]);
  });

  it('never returns more points than slices', () => {
    const many = Array.from({ length: 10_000 }, (_, i) => s(i * 10, i % 7));
    expect(downsample(many, 0, 100_000, 360).length).toBeLessThanOrEqual(361);
  });
});

describe('operations from the events stream', () => {
  it('lists the newest first, the later of two started in the same millisecond first', () => {
    const ops = foldOperations([
      { opId: 'op-a1', app: 'web', job: 'drill', type: 'started', time: 5 },
      { opId: 'op-b2', app: 'web', job: 'failover', type: 'started', time: 5 },
      {
        opId: 'op-a1',
        app: 'web',
        job: 'drill',
        type: 'finished',
        time: 9,
        error: { code: 'x', message: 'boom' },
      },
      { opId: 'op-a1', app: 'web', job: 'cleanup', type: 'finished', time: 10 },
    ]);
    expect(ops.map((o) => [o.opId, o.state])).toEqual([
      ['op-b2', 'running'],
      ['op-a1', 'failed'],
    ]);
    expect(ops[1]).toMatchObject({ error: 'boom', cleanedUp: true });
  });

  it("shows how far an instant failover's hydration is", () => {
    const step = (progress: number) =>
      ({
        opId: 'op-c3',
        app: 'web',
        job: 'failover',
        type: 'step',
        step: 'hydrate',
        progress,
        time: 6,
      }) as const;
    const ops = foldOperations([
      { opId: 'op-c3', app: 'web', job: 'failover', type: 'started', time: 5 },
      step(0.25),
      step(0.4267),
    ]);
    expect(ops[0]?.step).toBe('hydrating 42 %');
  });
});
