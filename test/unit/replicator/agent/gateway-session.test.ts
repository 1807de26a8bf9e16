/** The agent's gateway session: one request built once, takeover of its own session, clock offset. */
import { describe, expect, it } from 'vitest';
import { DrError } from '../../../../core/errors.js';
import { silentLog } from '../../../../core/log.js';
import { GatewaySession } from '../../../../replicator/agent/gateway-session.js';
import { FakeGateway, testKek } from './agent-fixture.js';

/** An agent lock as a restarted agent finds it: a dead predecessor's session and pids. */
function lockLeft(previousSession?: string, deadPids: number[] = []) {
  const recorded: string[] = [];
  return {
    recorded,
    lock: {
      previousSession,
      deadPids,
      recordSession: async (id: string) => {
        recorded.push(id);
      },
    },
  };
}

function sessionFor(gw: FakeGateway, o: { now?: () => number; previous?: string } = {}) {
  const l = lockLeft(o.previous, o.previous ? [111, 222] : []);
  const reopened: string[] = [];
  const session = new GatewaySession({
    app: 'web',
    client: gw,
    kek: testKek(),
    blockSize: 65536,
    lock: l.lock,
    log: silentLog,
    now: o.now ?? Date.now,
    onReopen: async (next) => {
      reopened.push(next.sessionId);
    },
  });
  return { session, recorded: l.recorded, reopened };
}

const VOLUMES = [
  { name: 'data', size: 1 << 20 },
  { name: 'logs', size: 1 << 19 },
];

describe('GatewaySession', () => {
  it('opens with every volume, takes over a dead predecessor, and records its own session', async () => {
    const gw = new FakeGateway();
    const { session, recorded } = sessionFor(gw, { previous: 's-old' });
    const opened = await session.open(VOLUMES);
    expect(opened.sessionId).toBe('s1');
    expect(session.current?.sessionId).toBe('s1');
    const req = gw.opens[0];
    expect(req?.replaces).toBe('s-old');
    expect(req?.replacesPids).toEqual([111, 222]);
    expect(req?.pid).toBe(process.pid);
    expect(req?.volumes.map((v) => [v.name, v.size, v.blockSize])).toEqual([
      ['data', 1 << 20, 65536],
      ['logs', 1 << 19, 65536],
    ]);
    expect(recorded).toEqual(['s1']);
  });

  it('sends the same request again when it reopens, replacing its own session', async () => {
    const gw = new FakeGateway();
    const { session, recorded, reopened } = sessionFor(gw, { previous: 's-old' });
    const first = await session.open(VOLUMES);
    await session.reopen(first);
    const [a, b] = gw.opens;
    expect(b?.replaces).toBe('s1');
    expect(b?.replacesPids).toBeUndefined();
    // Built once: the wrapped keys (fresh random wrappings) are the very same.
    expect(b?.volumes).toEqual(a?.volumes);
    expect(reopened).toEqual(['s2']);
    expect(recorded).toEqual(['s1', 's2']);
    expect(session.current?.sessionId).toBe('s2');
  });

  it('measures the clock offset at the open, from the middle of the round trip', async () => {
    const gw = new FakeGateway();
    let t = 1_000_000;
    // The agent's clock reads 1_000_100 as it asks and 1_000_200 as the answer comes; the
    // gateway answered halfway, an hour ahead.
    gw.serverTime = () => 1_000_150 + 3_600_000;
    const { session } = sessionFor(gw, {
      now: () => {
        const v = t;
        t += 100;
        return v;
      },
    });
    await session.open(VOLUMES);
    expect(session.clockOffsetMs).toBe(3_600_000);
  });

  it('refines the offset from a heartbeat, which carries the session and the status', async () => {
    const gw = new FakeGateway();
    const { session } = sessionFor(gw, { now: () => 5_000 });
    gw.serverTime = () => 5_000;
    await session.open(VOLUMES);
    expect(session.clockOffsetMs).toBe(0);
    gw.serverTime = () => 7_500;
    session.heartbeat({ phase: 'continuous', intervalMs: 1000, backlogBytes: 0 });
    await waitUntil(() => session.clockOffsetMs === 2_500);
    expect(gw.heartbeats[0]).toMatchObject({
      sessionId: 's1',
      phase: 'continuous',
      sentAt: 5_000,
      clockOffsetMs: 0,
    });
  });

  it('hands each heartbeat answer on', async () => {
    const gw = new FakeGateway();
    const answers: number[] = [];
    const session = new GatewaySession({
      app: 'web',
      client: gw,
      kek: testKek(),
      blockSize: 65536,
      lock: lockLeft().lock,
      log: silentLog,
      now: Date.now,
      onHeartbeatAnswer: (a) => answers.push(a.serverTime),
    });
    gw.serverTime = () => 42;
    await session.open(VOLUMES);
    session.heartbeat({ phase: 'continuous', intervalMs: 1000, backlogBytes: 0 });
    await waitUntil(() => answers.length === 1);
    expect(answers).toEqual([42]);
  });

  it('reopens once for several calls that found the session lost, and each goes on', async () => {
    const gw = new FakeGateway();
    const { session, reopened } = sessionFor(gw);
    await session.open(VOLUMES);
    gw.restart();
    const used = await Promise.all(
      [1, 2, 3].map((n) =>
        session.call(`batch ${n}`, async (id) => {
          await gw.sendBatch('web', id, []);
          return id;
        }),
      ),
    );
    expect(used).toEqual(['s2', 's2', 's2']);
    expect(reopened).toEqual(['s2']);
    expect(gw.opens).toHaveLength(2);
    expect(gw.batches).toHaveLength(3);
  });

  it('stops the cycle when the gateway’s store was replaced under it (another gateway took the app), keeping the new session for the restart', async () => {
    const gw = new FakeGateway();
    const { session, recorded } = sessionFor(gw);
    const first = await session.open(VOLUMES);
    gw.storeId = 'store-2';
    const err = await session.reopen(first).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DrError);
    expect((err as DrError).code).toBe('store_replaced');
    expect((err as DrError).message).toMatch(/store for web was replaced.*starts again/);
    expect(session.current?.sessionId).toBe('s1');
    // The new session is handed back for the restart to open its own; nothing more is sent meanwhile.
    expect(gw.closed).toEqual(['s2']);
    expect(recorded).toEqual(['s1']);
    await expect(
      session.call('batch 1', (id) => gw.sendBatch('web', id, [])),
    ).rejects.toMatchObject({ code: 'store_replaced' });
  });

  it('reopens as soon as a heartbeat hears the session is lost; a store replaced meanwhile fails every later call, for the agent to start again', async () => {
    const gw = new FakeGateway();
    const { session } = sessionFor(gw);
    await session.open(VOLUMES);
    const beat = () =>
      session.heartbeat({ phase: 'continuous', intervalMs: 1000, backlogBytes: 0 });
    gw.restart();
    beat();
    await waitUntil(() => session.current?.sessionId === 's2');
    // Another gateway took the app over while the agent was idle: its store is new.
    gw.restart();
    gw.storeId = 'store-2';
    beat();
    await waitUntil(() => gw.opens.length === 3);
    await new Promise((r) => setImmediate(r));
    await expect(
      session.call('batch 1', (id) => gw.sendBatch('web', id, [])),
    ).rejects.toMatchObject({ code: 'store_replaced' });
    expect(gw.batches).toEqual([]);
  });

  it('once the store is known replaced, a heartbeat that hears its session lost opens no other (the restart opens its own)', async () => {
    const gw = new FakeGateway();
    const { session } = sessionFor(gw);
    const first = await session.open(VOLUMES);
    gw.storeId = 'store-2';
    await expect(session.reopen(first)).rejects.toMatchObject({ code: 'store_replaced' });
    gw.restart();
    session.heartbeat({ phase: 'continuous', intervalMs: 1000, backlogBytes: 0 });
    // The heartbeat is refused (session lost) and its answer handled within these turns.
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    expect(gw.opens).toHaveLength(2);
    expect(gw.closed).toEqual(['s2']);
  });

  it('a reopening answered after the session was closed hands its new session back', async () => {
    const gw = new FakeGateway();
    const { session } = sessionFor(gw);
    await session.open(VOLUMES);
    let asked!: () => void;
    const reopening = new Promise<void>((resolve) => {
      asked = resolve;
    });
    let letGo!: () => void;
    const gate = new Promise<void>((resolve) => {
      letGo = resolve;
    });
    const open = gw.openSession.bind(gw);
    gw.openSession = async (app, body) => {
      asked();
      await gate;
      return open(app, body);
    };
    gw.restart();
    session.heartbeat({ phase: 'continuous', intervalMs: 1000, backlogBytes: 0 });
    await reopening;
    const closing = session.close();
    letGo();
    await closing;
    expect(gw.opens).toHaveLength(2);
    expect(gw.closed).toEqual(['s1', 's2']);
    expect(session.current).toBeUndefined();
  });

  it('keeps the old session when the new one is refused (its chain does not follow)', async () => {
    const gw = new FakeGateway();
    const refusing = new GatewaySession({
      app: 'web',
      client: gw,
      kek: testKek(),
      blockSize: 65536,
      lock: lockLeft().lock,
      log: silentLog,
      now: Date.now,
      onReopen: async () => {
        throw new DrError('forked', { code: 'point_unverified' });
      },
    });
    const first = await refusing.open(VOLUMES);
    await expect(refusing.reopen(first)).rejects.toThrow('forked');
    expect(refusing.current?.sessionId).toBe('s1');
  });

  it('closes its session once, and a call after the close says the agent is not started', async () => {
    const gw = new FakeGateway();
    const { session } = sessionFor(gw);
    await session.open(VOLUMES);
    await session.close();
    await session.close();
    expect(gw.closed).toEqual(['s1']);
    await expect(session.call('commit point', async (id) => id)).rejects.toThrow(
      'agent not started',
    );
  });
});

/** Waits (bounded) for a fire-and-forget heartbeat's answer to land. */
async function waitUntil(ok: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !ok(); i++) await new Promise((r) => setImmediate(r));
  expect(ok()).toBe(true);
}
