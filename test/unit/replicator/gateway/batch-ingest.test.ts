/** Batch ingest: only from the lease holder, only known blocks, refused while the disk is short of space. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLog } from '../../../../core/log.js';
import { createAgentLeases } from '../../../../replicator/gateway/agent-leases.js';
import { createBatchIngest } from '../../../../replicator/gateway/batch-ingest.js';
import { BlockStore } from '../../../../replicator/gateway/block-store.js';
import { APP, BLOCK, type Fixture, makeBatch, makeFixture } from './store-fixture.js';

let fx: Fixture;
let store: BlockStore;
beforeEach(async () => {
  fx = await makeFixture();
  store = await BlockStore.open({ dir: fx.storeDir, directIo: false });
});
afterEach(async () => {
  await store.close();
  await fx.cleanup();
});

async function setup(free: number | undefined) {
  let t = 1_000_000;
  const now = () => t;
  const leases = createAgentLeases({ store, log: silentLog, now, leaseMs: 30_000 });
  const s = await leases.open(APP, {
    agentId: 'a',
    host: 'h',
    pid: 1,
    volumes: [
      {
        name: 'disk',
        size: 16 * BLOCK,
        blockSize: BLOCK,
        wrappedKey: fx.wrap('disk').toString('base64'),
      },
    ],
  });
  let asked = 0;
  const ingest = createBatchIngest({
    store,
    leases,
    minFreeSpace: 1000,
    now,
    freeBytes: async () => {
      asked++;
      return free;
    },
  });
  const disk = store.app(APP)?.volumes()[0];
  if (!disk) throw new Error('no volume registered');
  return {
    leases,
    ingest,
    sessionId: s.sessionId,
    disk,
    asked: () => asked,
    tick: (ms: number) => (t += ms),
  };
}

describe('batch ingest', () => {
  it('makes a batch durable, counts its bytes once, and knows a duplicate', async () => {
    const { leases, ingest, sessionId, disk } = await setup(1e12);
    const b = makeBatch(fx, 1, [{ volume: disk, block: 0 }]);
    expect(await ingest(APP, sessionId, [b.bytes])).toEqual({ seq: 1, duplicate: false });
    expect(await ingest(APP, sessionId, [b.bytes])).toEqual({ seq: 1, duplicate: true });
    expect(leases.runtime(APP).bytesShipped).toBe(b.bytes.length);
  });

  it('refuses a batch from another session, a garbled one, and one naming an unknown block', async () => {
    const { ingest, sessionId, disk } = await setup(undefined);
    const b = makeBatch(fx, 1, [{ volume: disk, block: 0 }]);
    await expect(ingest(APP, 'other', [b.bytes])).rejects.toMatchObject({ code: 'agent_conflict' });
    await expect(ingest(APP, sessionId, [Buffer.from('garbage')])).rejects.toMatchObject({
      code: 'bad_request',
    });
    const outside = makeBatch(fx, 1, [{ volume: disk, block: 16 }]);
    await expect(ingest(APP, sessionId, [outside.bytes])).rejects.toThrow(/names block 16/);
    await expect(ingest('ghost', sessionId, [b.bytes])).rejects.toMatchObject({
      code: 'app_unknown',
    });
  });

  it('answers gateway_full below the reserve, asking the file system at most once a second', async () => {
    const { ingest, sessionId, disk, asked, tick } = await setup(999);
    const b = makeBatch(fx, 1, [{ volume: disk, block: 0 }]);
    await expect(ingest(APP, sessionId, [b.bytes])).rejects.toMatchObject({ code: 'gateway_full' });
    await expect(ingest(APP, sessionId, [b.bytes])).rejects.toMatchObject({ code: 'gateway_full' });
    expect(asked()).toBe(1);
    tick(1001);
    await expect(ingest(APP, sessionId, [b.bytes])).rejects.toMatchObject({ code: 'gateway_full' });
    expect(asked()).toBe(2);
    expect(store.app(APP)?.stats().lastSeq).toBe(0);
  });
});
