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
  store: { storedBytes: 0 },
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
      volumes: [],
      runsAt: { site: 'home' as const, where: 'shop-1' },
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
      volumes: [],
      runsAt: { site: 'home' as const, where: 'shop-1' },
    };
    const paused = renderStatusPage(snapshot({ apps: [{ ...app, protection: 'paused' }] }));
    expect(paused).toContain('<span class="muted">(not replicating; no RPO alerts)</span>');
    expect(paused).not.toContain('data-testid="protection"');
    const over = renderStatusPage(
      snapshot({
        apps: [
          {
            ...app,
            protection: 'failed-over',
            runsAt: {
              site: 'dr',
              where: 'local server drsrv-1 at 127.0.0.1:9100',
              opId: 'op-f1',
              since: '2026-11-29T00:50:00.000Z',
            },
          },
        ],
      }),
    );
    // One word for the state: "failed over", never "paused" or "stalled" beside it.
    expect(over).toContain(
      '<span class="phase phase-failed-over" data-testid="phase">failed over</span>',
    );
    expect(over).not.toContain('data-testid="phase">paused');
    expect(over).toContain(
      '<td data-testid="runs-at"><span class="dr">DR site</span>: local server drsrv-1 at 127.0.0.1:9100 <span class="muted">by op-f1 since 2026-11-29 00:50:00 UTC</span></td>',
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
            steps: [],
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
            volumes: [
              {
                name: 'data',
                sizeBytes: 64 * 1024 * 1024,
                backlogBytes: 8192,
                throughputBytesPerSec: 2048,
              },
              {
                name: 'db',
                sizeBytes: 64 * 1024 * 1024,
                backlogBytes: 0,
                throughputBytesPerSec: 0,
                writes: {
                  windowSeconds: 600,
                  writtenBytes: 100 * 1024 * 1024,
                  blockSize: 65536,
                  dirtied: [
                    { blockSize: 4096, bytes: 100 * 1024 * 1024 },
                    { blockSize: 16384, bytes: 400 * 1024 * 1024 },
                    { blockSize: 65536, bytes: 1600 * 1024 * 1024 },
                  ],
                },
              },
              {
                name: 'logs',
                sizeBytes: 32 * 1024 * 1024,
                backlogBytes: 0,
                throughputBytesPerSec: 0,
                initialSync: { doneBytes: 8 * 1024 * 1024, sizeBytes: 32 * 1024 * 1024 },
              },
            ],
            runsAt: { site: 'home', where: 'shop-1' },
          },
        ],
        store: { storedBytes: 3 * 1024 * 1024, freeBytes: 10 * 2 ** 30, totalBytes: 40 * 2 ** 30 },
      }),
    );
    expect(html).toContain(
      '<td data-testid="agent">shop-1 <span class="muted">pid 42, heard 2.0 s ago</span></td>',
    );
    expect(html).toContain(
      '<tr data-volume="data"><td>data</td><td>64.0 MiB</td><td><span title="">trace</span></td><td data-testid="backlog">8.0 KiB</td><td data-testid="throughput">2.0 KiB/s</td><td data-testid="initial-sync"><span class="ok">done</span></td><td data-testid="write-amplification">-</td></tr>',
    );
    // db's writes: 16x at its 64 KiB blocks, advice behind the mark, the sentences on hover.
    expect(html).toContain(
      '<td data-testid="write-amplification"><span title="db: write amplification 16.0x at 64 KiB blocks',
    );
    expect(html).toContain('\ndb: advice: 4 KiB blocks would cut that to 1.0x (94% fewer');
    expect(html).toContain('>16.0x</span> <span class="breach">(advice)</span></td>');
    // The first copy of logs is a quarter done.
    expect(html).toContain(
      '<progress max="33554432" value="8388608"></progress> 25% <span class="muted">8.0 MiB of 32.0 MiB</span>',
    );
    expect(html).toContain('<td data-testid="runs-at">home <span class="muted">shop-1</span></td>');
    expect(html).toContain('10.0 GiB free of 40.0 GiB');
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
  it("keeps each step's first time, the drill's verdict, data-loss window and server", () => {
    const [op] = foldOperations([
      { opId: 'op-d1', app: 'web', job: 'drill', type: 'started', time: 1000 },
      { opId: 'op-d1', app: 'web', job: 'drill', type: 'step', step: 'materialise', time: 1100 },
      {
        opId: 'op-d1',
        app: 'web',
        job: 'drill',
        type: 'step',
        step: 'materialise',
        progress: 0.5,
        time: 1500,
      },
      { opId: 'op-d1', app: 'web', job: 'drill', type: 'step', step: 'launched', time: 2300 },
      {
        opId: 'op-d1',
        app: 'web',
        job: 'drill',
        type: 'finished',
        time: 3100,
        result: {
          opId: 'op-d1',
          app: 'web',
          mode: 'drill',
          point: 7,
          dataAgeSeconds: 1.6,
          rto: { materialiseMs: 1200, launchMs: 300, healthyMs: 600, totalMs: 2100 },
          health: { ok: true, output: 'ok' },
          server: { provider: 'local', id: 'drill-7', endpoint: '127.0.0.1:9001', details: {} },
          resumes: 0,
        },
      },
    ]);
    expect(op?.steps).toEqual([
      { step: 'materialise', at: 1100 },
      { step: 'launched', at: 2300 },
    ]);
    expect(op).toMatchObject({
      healthy: true,
      dataAgeSeconds: 1.6,
      server: { provider: 'local', id: 'drill-7', endpoint: '127.0.0.1:9001' },
    });
    const html = renderStatusPage(snapshot({ operations: op ? [op] : [] }));
    expect(html).toContain('<td data-testid="verdict"><span class="ok">healthy</span>');
    expect(html).toContain(
      '<td data-testid="data-loss">1.6 s <span class="muted">point #7</span></td>',
    );
    expect(html).toContain('<summary>2 steps</summary>');
    expect(html).toContain('<li>materialise started <span class="muted">+0.1 s</span></li>');
    expect(html).toContain('<li>server launched <span class="muted">+1.3 s</span></li>');
    expect(html).toContain('<li>succeeded <span class="muted">+2.1 s</span></li>');
  });

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
