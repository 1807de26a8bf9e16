/** The approval card's facts, read from real Redis state the way the gateway, monitor and worker leave it. */
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import type { Config } from '../../../core/config.js';
import { connectRedis } from '../../../core/redis.js';
import { AlertStore } from '../../../engine/alert-store.js';
import type { ApprovalRecord } from '../../../engine/approval-store.js';
import {
  fingerprintChanges,
  gatherCardFacts,
  withProgress,
} from '../../../engine/gather-card-facts.js';
import { recordLastRun } from '../../../engine/last-runs.js';
import { replicationKey } from '../../../replicator/gateway/state-publisher.js';
import type { AppStatus } from '../../../replicator/transport/wire-types.js';
import { type EngineHome, engineHome, testPrefix } from '../../helpers/engine-home.js';
import { redisUnavailable, startRedis, type TestRedis } from '../../helpers/redis-server.js';
import { skipBecause } from '../../helpers/skip.js';

const problem = redisUnavailable();
const NOW = Date.parse('2026-11-25T10:00:00Z');
const iso = (ms: number) => new Date(ms).toISOString();

/** A replication state as the gateway publishes it. */
function status(over: Partial<AppStatus> = {}): AppStatus & { publishedAt: string } {
  return {
    app: 'web',
    phase: 'continuous',
    agent: { host: 'web-1', pid: 42, lastSeen: iso(NOW - 3_000), clockOffsetMs: 0 },
    lastPoint: { id: 13, time: iso(NOW - 5_000), label: 'fuzzy' },
    lastConsistentPoint: { id: 12, time: iso(NOW - 42_000), label: 'crash-consistent' },
    lagSeconds: 42,
    trackers: {},
    lastFreezeMs: 12,
    lastResync: null,
    points: 12,
    bytesShipped: 0,
    throughputBytesPerSec: 0,
    storedBytes: 0,
    backlogBytes: 0,
    publishedAt: iso(NOW - 1_000),
    ...over,
  };
}

function approval(over: Partial<ApprovalRecord> = {}): ApprovalRecord {
  return {
    id: 'A-7',
    opId: 'op-card1',
    verb: 'failover',
    app: 'web',
    requestedBy: 'slack:USAM',
    requestedPerson: 'sam',
    required: 2,
    groups: ['sre-oncall'],
    approvals: [{ actor: 'slack:UTOM', person: 'tom', at: iso(NOW - 10_000) }],
    status: 'pending',
    expiresAt: iso(NOW + 30 * 60_000),
    expiresAtMs: NOW + 30 * 60_000,
    policy: 'prod-failover-needs-two',
    reason: 'zone a lost power',
    args: {},
    ...over,
  };
}

describe('gatherCardFacts', () => {
  let redis: TestRedis;
  let h: EngineHome;
  let conn: Redis;
  let prefix: string;
  let config: Config;
  let clock = NOW;

  beforeEach(async (ctx: TestContext) => {
    if (problem) skipBecause(ctx, problem);
    redis = await startRedis();
    h = await engineHome();
    conn = connectRedis(redis.url, 'test');
    prefix = testPrefix();
    config = await h.config();
    clock = NOW;
  });

  afterEach(async () => {
    conn?.disconnect();
    await redis?.stop();
    await h?.cleanup();
  });

  const ctx = (cfg: Config = config) => ({
    redis: conn,
    prefix,
    config: cfg,
    alerts: new AlertStore(conn, prefix),
    now: () => clock,
  });
  const publish = (s: AppStatus & { publishedAt?: string }) =>
    conn.hset(replicationKey(prefix), 'web', JSON.stringify(s));

  it('a prod failover: who and why, tier, source now, point and loss, last drill, RTO, fence, approvals, expiry', async () => {
    await publish(status({ backlogBytes: 3 * 1024 * 1024 }));
    await recordLastRun({ redis: conn, prefix }, 'web', 'drill', {
      opId: 'op-drill1',
      at: NOW - 2 * 86_400_000,
      ok: true,
      rtoMs: 62_000,
    });
    await recordLastRun({ redis: conn, prefix }, 'web', 'verify', {
      opId: 'op-v',
      at: NOW,
      ok: true,
    });
    const alerts = new AlertStore(conn, prefix);
    const raised = await alerts.raise('rpo', 'web', 'rpo-objective', NOW - 120_000);
    // The fence command as dr.yaml gives it once apps have one (issue 14).
    const fenced = structuredClone(config);
    (fenced.apps.web as { fence?: string }).fence = 'systemctl stop web';

    const card = await gatherCardFacts(ctx(fenced), approval());
    expect(card).toMatchObject({
      kind: 'approval-card',
      takenAt: NOW,
      verb: 'failover',
      app: 'web',
      tier: 'prod',
      opId: 'op-card1',
      approvalId: 'A-7',
      requestedBy: 'sam',
      reason: 'zone a lost power',
      source: {
        phase: 'continuous',
        agentHost: 'web-1',
        heartbeatAgeSeconds: 3,
        stateAgeSeconds: 1,
        alerts: [{ id: raised?.id, kind: 'rpo', sinceSeconds: 120 }],
      },
      // latest means the newest consistent point, not the newer fuzzy one
      point: {
        chosen: 'latest',
        id: 12,
        label: 'crash-consistent',
        time: iso(NOW - 42_000),
        ageSeconds: 42,
        known: true,
      },
      // the agent was heard 39 s after the point: those writes are not in it
      dataLoss: { seconds: 39, basis: 'agent-last-heard', backlogBytes: 3 * 1024 * 1024 },
      lastDrill: { opId: 'op-drill1', ok: true, rtoMs: 62_000 },
      expectedRto: { ms: 62_000, from: 'drill' },
      fence: { applies: true, command: 'systemctl stop web' },
      approvals: { names: ['tom'], required: 2, groups: ['sre-oncall'] },
      status: 'pending',
      expiresAt: iso(NOW + 30 * 60_000),
    });
  });

  it('says what it does not know: no state published, no drill, no fence, a given point it cannot name', async () => {
    const { reason: _none, ...unexplained } = approval({ args: { point: 5 } });
    const card = await gatherCardFacts(ctx(), unexplained);
    expect(card.reason).toBeUndefined();
    expect(card.source).toEqual({ alerts: [] });
    expect(card.point).toEqual({ chosen: 'given', id: 5, known: false });
    expect(card.dataLoss).toBeUndefined();
    expect(card.lastDrill).toBeUndefined();
    expect(card.expectedRto).toBeUndefined();
    expect(card.fence).toEqual({ applies: true });
  });

  it('a failed last drill is shown as failed; the expected RTO comes from the newest measured run', async () => {
    await publish(status());
    const runs = { redis: conn, prefix };
    await recordLastRun(runs, 'web', 'failover', {
      opId: 'op-f',
      at: NOW - 3_600_000,
      ok: true,
      rtoMs: 90_000,
    });
    await recordLastRun(runs, 'web', 'drill', {
      opId: 'op-d',
      at: NOW - 60_000,
      ok: false,
      error: 'health check failed',
    });
    const card = await gatherCardFacts(ctx(), approval());
    expect(card.lastDrill).toMatchObject({ ok: false, error: 'health check failed' });
    expect(card.expectedRto).toMatchObject({ ms: 90_000, from: 'failover' });
  });

  it('failback: no point, no fence; the RTO expected is the last failback downtime', async () => {
    await publish(status());
    await recordLastRun({ redis: conn, prefix }, 'web', 'failback', {
      opId: 'op-b',
      at: NOW - 86_400_000,
      ok: true,
      rtoMs: 4_000,
    });
    const card = await gatherCardFacts(ctx(), approval({ verb: 'failback' }));
    expect(card.point).toBeUndefined();
    expect(card.fence).toEqual({ applies: false });
    expect(card.expectedRto).toMatchObject({ ms: 4_000, from: 'failback' });
  });

  it('an unreadable state or run is shown as unknown, never thrown', async () => {
    await conn.hset(replicationKey(prefix), 'web', '{not json');
    await conn.hset(`${prefix}lastrun:web`, 'drill', 'garbage');
    const card = await gatherCardFacts(ctx(), approval());
    expect(card.source.phase).toBeUndefined();
    expect(card.lastDrill).toBeUndefined();
  });

  it('the fingerprint changes with the point and the source, not with time passing or presses', async () => {
    await publish(status());
    const first = await gatherCardFacts(ctx(), approval());

    // Newer points every second and another approval: the decision is the same.
    clock = NOW + 20_000;
    await publish(
      status({
        agent: { host: 'web-1', pid: 42, lastSeen: iso(clock - 1_000), clockOffsetMs: 0 },
        lastConsistentPoint: { id: 19, time: iso(clock - 2_000), label: 'crash-consistent' },
      }),
    );
    const later = await gatherCardFacts(
      ctx(),
      approval({ approvals: [], required: 2, status: 'pending' }),
    );
    expect(fingerprintChanges(first.fingerprint, later.fingerprint)).toEqual([]);

    // The agent goes quiet and an alert opens: the approver did not see that.
    clock = NOW + 120_000;
    const alert = await new AlertStore(conn, prefix).raise('agent-silent', 'web', 'p', clock);
    await publish(status({ phase: 'stalled' }));
    const silent = await gatherCardFacts(ctx(), approval());
    expect(fingerprintChanges(first.fingerprint, silent.fingerprint)).toEqual([
      'replication: continuous → stalled',
      'agent: heard → silent',
      `open alerts: none → ${alert?.id}`,
    ]);

    // A given point the gateway no longer names.
    const given = await gatherCardFacts(ctx(), approval({ args: { point: 12 } }));
    await publish(status({ lastConsistentPoint: null, lastPoint: null }));
    const gone = await gatherCardFacts(ctx(), approval({ args: { point: 12 } }));
    expect(fingerprintChanges(given.fingerprint, gone.fingerprint)).toContain(
      'point: 12:crash-consistent → 12:unknown',
    );
  });

  it('withProgress shows the approvals now and keeps the other facts', async () => {
    await publish(status());
    const card = await gatherCardFacts(ctx(), approval({ approvals: [] }));
    const a = approval({
      approvals: [
        { actor: 'slack:UTOM', person: 'tom', at: iso(NOW) },
        { actor: 'slack:UUMA', person: 'uma', at: iso(NOW) },
      ],
      status: 'granted',
    });
    const shown = withProgress(card, a);
    expect(shown.approvals.names).toEqual(['tom', 'uma']);
    expect(shown.status).toBe('granted');
    expect(shown.fingerprint).toBe(card.fingerprint);
    expect(shown.point).toEqual(card.point);
  });
});
