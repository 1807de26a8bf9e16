/** An app's status: its phase and why, from lease, points and protection. */
import { describe, expect, it } from 'vitest';
import type { AppRuntime, Lease } from '../../../../replicator/gateway/agent-leases.js';
import { appStatus } from '../../../../replicator/gateway/app-status.js';
import type { PointInfo } from '../../../../replicator/transport/protocol.js';

const t = Date.parse('2026-12-07T05:00:00Z');
const point = (id: number, label: PointInfo['label'], ago: number): PointInfo => ({
  id,
  time: new Date(t - ago).toISOString(),
  label,
  seqFrom: id,
  seqTo: id,
  volumes: {},
});
const lease = (over: Partial<Lease> = {}): Lease => ({
  sessionId: 's',
  host: 'h',
  pid: 1,
  lastSeen: t - 1000,
  phase: 'continuous',
  intervalMs: 1000,
  backlogBytes: 0,
  error: undefined,
  clockOffsetMs: 0,
  trackers: {},
  lastFreezeMs: null,
  lastResync: null,
  agentLastPoint: null,
  volumes: {},
  link: null,
  unchanged: undefined,
  ...over,
});
const runtime = (l?: Lease, recent: Array<[number, number]> = []): AppRuntime => ({
  lease: l,
  bytesShipped: 0,
  recent,
  volumeRecent: [],
  maintenance: Promise.resolve(),
});
const base = { app: 'web', storedBytes: 0, protection: undefined, t };

describe('appStatus', () => {
  it("shows each volume's size, the agent's backlog and first-copy progress, and the bytes received in the last minute", () => {
    const rt = runtime(
      lease({
        phase: 'initial-sync',
        volumes: {
          a: { backlogBytes: 4096, initialSync: { doneBytes: 1024, sizeBytes: 8192 } },
        },
      }),
    );
    rt.volumeRecent = [
      [t - 70_000, 1, 6000], // over a minute ago: not counted
      [t - 10_000, 1, 3000],
      [t - 5_000, 2, 600],
    ];
    const s = appStatus({
      ...base,
      points: [],
      runtime: rt,
      volumes: [
        { id: 1, name: 'a', size: 8192 },
        { id: 2, name: 'b', size: 4096 },
      ],
      store: { freeBytes: 10, totalBytes: 100 },
    });
    expect(s.volumes).toEqual([
      {
        name: 'a',
        sizeBytes: 8192,
        backlogBytes: 4096,
        throughputBytesPerSec: 50,
        initialSync: { doneBytes: 1024, sizeBytes: 8192 },
      },
      { name: 'b', sizeBytes: 4096, backlogBytes: 0, throughputBytesPerSec: 10 },
    ]);
    expect(s.store).toEqual({ freeBytes: 10, totalBytes: 100 });
  });

  it("passes on a volume's write figures from the agent, and none where the agent sent none", () => {
    const writes = {
      windowSeconds: 600,
      writtenBytes: 4096,
      blockSize: 65536,
      dirtied: [{ blockSize: 65536, bytes: 65536 }],
    };
    const s = appStatus({
      ...base,
      points: [],
      runtime: runtime(
        lease({ volumes: { a: { backlogBytes: 0, writes }, b: { backlogBytes: 0 } } }),
      ),
      volumes: [
        { id: 1, name: 'a', size: 8192 },
        { id: 2, name: 'b', size: 4096 },
      ],
    });
    expect(s.volumes?.[0]?.writes).toEqual(writes);
    expect(s.volumes?.[1]).not.toHaveProperty('writes');
  });

  it('is unprotected with nothing, stalled with points but no agent', () => {
    expect(appStatus({ ...base, points: [], runtime: runtime() })).toMatchObject({
      phase: 'unprotected',
      lagSeconds: null,
      protection: { state: 'protected' },
    });
    expect(
      appStatus({ ...base, points: [point(1, 'fuzzy', 0)], runtime: runtime() }),
    ).toMatchObject({
      phase: 'stalled',
      reason: 'no agent connected since the gateway started',
    });
  });

  it("follows the agent's phase, and stalls on its error or its silence", () => {
    const points = [point(1, 'crash-consistent', 10_000), point(2, 'fuzzy', 0)];
    expect(appStatus({ ...base, points, runtime: runtime(lease()) })).toMatchObject({
      phase: 'continuous',
      lastPoint: { id: 2 },
      lastConsistentPoint: { id: 1 },
      lagSeconds: 10,
    });
    expect(
      appStatus({ ...base, points, runtime: runtime(lease({ error: 'disk gone' })) }),
    ).toMatchObject({
      phase: 'stalled',
      reason: 'disk gone',
    });
    expect(
      appStatus({ ...base, points, runtime: runtime(lease({ lastSeen: t - 20_000 })) }),
    ).toMatchObject({ phase: 'stalled', reason: 'agent not heard for 20 s' });
  });

  it('counts RPO from the agent saying nothing changed since the newest consistent point', () => {
    const points = [point(1, 'app-consistent', 60_000)];
    const s = appStatus({
      ...base,
      points,
      runtime: runtime(lease({ unchanged: { point: 1, at: t - 5000 } })),
    });
    expect(s.lagSeconds).toBe(5);
    expect(s.lastConsistentPoint?.unchangedAt).toBe(new Date(t - 5000).toISOString());
  });

  it('shows paused and failed over with who and how to go on', () => {
    const points = [point(1, 'fuzzy', 0)];
    const paused = appStatus({
      ...base,
      points,
      runtime: runtime(lease({ phase: 'paused' })),
      protection: { state: 'paused', by: 'ann', since: 'then' },
    });
    expect(paused.phase).toBe('paused');
    expect(paused.reason).toMatch(
      /paused by ann since then; its agent is waiting; resume with `dr resume web`/,
    );
    const over = appStatus({
      ...base,
      points,
      runtime: runtime(),
      protection: { state: 'failed-over', opId: 'op-1', since: 'then' },
    });
    expect(over).toMatchObject({
      phase: 'paused',
      protection: { state: 'failed-over', opId: 'op-1' },
    });
  });

  it('measures throughput over the last minute only, and forgets older batches', () => {
    const rt = runtime(lease(), [
      [t - 120_000, 6000],
      [t - 1000, 600],
    ]);
    expect(appStatus({ ...base, points: [], runtime: rt }).throughputBytesPerSec).toBe(10);
    expect(rt.recent).toHaveLength(1);
  });
});

describe('appStatus of a way home (APP--home)', () => {
  it('is paused, not stalled, with no agent: its agent runs only while the app is failed over', () => {
    const s = appStatus({
      ...base,
      app: 'web--home',
      points: [point(3, 'crash-consistent', 60_000)],
      runtime: runtime(),
    });
    expect(s.phase).toBe('paused');
    expect(s.reason).toMatch(
      /^the way home of web: replicated only while web runs on a recovered server/,
    );
    const quiet = appStatus({
      ...base,
      app: 'web--home',
      points: [point(3, 'crash-consistent', 60_000)],
      runtime: runtime(lease({ lastSeen: t - 600_000 })),
    });
    expect(quiet.phase).toBe('paused');
  });

  it('stays stalled when its agent reports an error, and an ordinary app with no agent stays stalled', () => {
    const failing = appStatus({
      ...base,
      app: 'web--home',
      points: [point(3, 'crash-consistent', 60_000)],
      runtime: runtime(lease({ error: 'disk read failed' })),
    });
    expect(failing).toMatchObject({ phase: 'stalled', reason: 'disk read failed' });
    const plain = appStatus({
      ...base,
      points: [point(3, 'crash-consistent', 60_000)],
      runtime: runtime(),
    });
    expect(plain.phase).toBe('stalled');
  });
});
