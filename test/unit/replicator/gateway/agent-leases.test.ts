/** Agent leases: one agent per app, takeover of a dead one, lapse, heartbeat figures. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLog } from '../../../../core/log.js';
import { createAgentLeases } from '../../../../replicator/gateway/agent-leases.js';
import { BlockStore } from '../../../../replicator/gateway/block-store.js';
import type { SessionRequest } from '../../../../replicator/transport/protocol.js';
import { APP, BLOCK, type Fixture, makeFixture } from './store-fixture.js';

let fx: Fixture;
let store: BlockStore;
let t: number;
beforeEach(async () => {
  fx = await makeFixture();
  store = await BlockStore.open({ dir: fx.storeDir });
  t = Date.parse('2026-12-07T05:00:00Z');
});
afterEach(async () => {
  await store.close();
  await fx.cleanup();
});

const leasesOf = () => createAgentLeases({ store, log: silentLog, now: () => t, leaseMs: 30_000 });
const session = (over: Partial<SessionRequest> = {}): SessionRequest => ({
  agentId: 'a',
  host: 'h1',
  pid: 100,
  volumes: [
    {
      name: 'disk',
      size: 16 * BLOCK,
      blockSize: BLOCK,
      wrappedKey: fx.wrap('disk').toString('base64'),
    },
  ],
  ...over,
});

describe('agent leases', () => {
  it('opens a session that registers the volumes, and refuses a second agent while the first is heard', async () => {
    const l = leasesOf();
    const s = await l.open(APP, session());
    expect(s.volumes.map((v) => v.name)).toEqual(['disk']);
    expect(s.serverTime).toBe(t);
    expect(l.holds(APP, s.sessionId).phase).toBe('initial-sync');
    await expect(l.open(APP, session({ host: 'h2', pid: 7 }))).rejects.toMatchObject({
      code: 'agent_conflict',
    });
    expect(() => l.holds(APP, 'other')).toThrow(/replicated by another agent/);
    l.release(APP, 'other'); // not the current session: nothing changes
    expect(l.holds(APP, s.sessionId).host).toBe('h1');
    l.release(APP, s.sessionId);
    expect(() => l.holds(APP, s.sessionId)).toThrow(/holds no session/);
  });

  it('is taken over by the named session, by a dead pid on the same host, or after the lease lapses', async () => {
    const l = leasesOf();
    const first = await l.open(APP, session());
    const second = await l.open(APP, session({ pid: 101, replaces: first.sessionId }));
    await expect(l.open(APP, session({ host: 'h2', replacesPids: [101] }))).rejects.toMatchObject({
      code: 'agent_conflict',
    });
    const third = await l.open(APP, session({ pid: 102, replacesPids: [101] }));
    expect(third.sessionId).not.toBe(second.sessionId);
    t += 30_001;
    const fourth = await l.open(APP, session({ host: 'h3', pid: 5 }));
    expect(l.holds(APP, fourth.sessionId).host).toBe('h3');
  });

  it('takes in heartbeats: the phase, figures, and the word "unchanged" never from the future', async () => {
    const l = leasesOf();
    const s = await l.open(APP, session());
    l.heartbeat(APP, {
      sessionId: s.sessionId,
      phase: 'continuous',
      intervalMs: 1000,
      backlogBytes: 42,
      clockOffsetMs: 10_000,
      unchanged: { point: 3, at: new Date(t).toISOString() },
      lastPoint: { id: 3, time: 'x', label: 'fuzzy' },
    });
    const lease = l.holds(APP, s.sessionId);
    expect(lease).toMatchObject({ phase: 'continuous', intervalMs: 1000, backlogBytes: 42 });
    expect(lease.unchanged).toEqual({ point: 3, at: t });
    expect(lease.agentLastPoint).toEqual({ id: 3, time: 'x', label: 'fuzzy' });
    l.heartbeat(APP, { sessionId: s.sessionId });
    expect(lease).toMatchObject({ phase: 'continuous', intervalMs: 5000, backlogBytes: 0 });
    expect(() => l.heartbeat(APP, { sessionId: 'nope' })).toThrow(/another agent/);
    l.drop(APP);
    expect(() => l.heartbeat(APP, { sessionId: s.sessionId })).toThrow(/holds no session/);
  });

  it('keeps no runtime state for an app the store does not hold', () => {
    const l = leasesOf();
    expect(() => l.holds('ghost', 's')).toThrow(/holds no session/);
    expect(l.peek('ghost')).toBeUndefined();
    expect(l.apps()).toEqual([]);
  });
});
