import { describe, expect, it } from 'vitest';
import { foldNotices } from '../../../../cli/observe/notice-state.js';
import { formatSeconds, renderStatusPage } from '../../../../cli/status-page/render-status-page.js';
import { rpoChart } from '../../../../cli/status-page/rpo-chart.js';
import type { StatusSnapshot } from '../../../../cli/status-page/status-snapshot.js';
import type { Notice } from '../../../../engine/contract.js';

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
        alerts: [
          {
            id: 'AL-1',
            key: 'alert:AL-1',
            kind: 'rpo.breach',
            severity: 'critical',
            summary: '<script>alert(1)</script>',
            since: 0,
            acknowledged: false,
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
    };
    expect(renderStatusPage(snapshot({ apps: [{ ...app, rpoSeconds: 94 }] }))).toContain(
      '<span class="breach" data-testid="rpo">1m 34s</span>',
    );
    expect(renderStatusPage(snapshot({ apps: [{ ...app, rpoSeconds: 4 }] }))).toContain(
      '<span class="ok" data-testid="rpo">4.0 s</span>',
    );
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

describe('open approvals and alerts from notices', () => {
  const n = (kind: Notice['kind'], key: string, extra: Partial<Notice> = {}): Notice => ({
    id: '',
    kind,
    key,
    targets: [],
    severity: 'warning',
    summary: kind,
    time: 1000,
    ...extra,
  });

  it('keeps an alert open through acknowledgement and escalation until it recovers', () => {
    const ack = [{ kind: 'ack' as const, label: 'Ack', words: 'ack AL-9' }];
    const open = [
      n('rpo.breach', 'alert:AL-9', { actions: ack }),
      n('alert.acknowledged', 'alert:AL-9'),
    ];
    expect(foldNotices(open).alerts).toMatchObject([
      { id: 'AL-9', acknowledged: true, kind: 'rpo.breach' },
    ]);
    const escalated = [...open, n('alert.escalated', 'alert:AL-9', { severity: 'critical' })];
    expect(foldNotices(escalated).alerts).toMatchObject([
      { severity: 'critical', acknowledged: true },
    ]);
    expect(foldNotices([...escalated, n('rpo.recovered', 'alert:AL-9')]).alerts).toEqual([]);
  });

  it('drops approvals that were decided or whose expiry has passed', () => {
    const approve = [{ kind: 'approve' as const, label: 'Approve', words: 'approve A-1' }];
    const asked = n('approval.requested', 'op:op-a', { actions: approve });
    expect(foldNotices([asked]).approvals.map((a) => a.id)).toEqual(['A-1']);
    expect(foldNotices([asked, n('approval.rejected', 'op:op-a')]).approvals).toEqual([]);
    const expiring = n('approval.requested', 'op:op-b', {
      actions: approve,
      data: { expiresAt: new Date(5000).toISOString() },
    });
    expect(foldNotices([expiring], 4000).approvals).toHaveLength(1);
    expect(foldNotices([expiring], 6000).approvals).toHaveLength(0);
  });
});
