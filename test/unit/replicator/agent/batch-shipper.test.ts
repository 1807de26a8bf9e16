// The shipper's MAC state follows the gateway's rule for a block sent twice: the higher seq wins,
// whatever order the acknowledgements come back in.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BatchShipper } from '../../../../replicator/agent/batch-shipper.js';
import { MacState } from '../../../../replicator/agent/mac-state.js';
import {
  blockMac,
  createWrappedVolumeKey,
  MAC_BYTES,
  unwrapVolumeKey,
} from '../../../../replicator/crypto/volume-key.js';
import { tempDir, testKek } from './agent-fixture.js';

const BLOCK = 4096;

describe('BatchShipper', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let macState: MacState;
  const kek = testKek();
  const keys = unwrapVolumeKey(
    kek,
    createWrappedVolumeKey(kek, 'web', 'data'),
    'web',
    'data',
    BLOCK,
  );
  const volume = { name: 'data', id: 1, keys };

  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    macState = await MacState.open(join(dir, 'state'));
    await macState.load('data', 4, async () => Buffer.alloc(4 * MAC_BYTES), false);
  });
  afterEach(async () => {
    await macState.close();
    await cleanup();
  });

  /** A shipper whose sends wait until the test answers them, one batch a block (or `batchBytes`). */
  function shipper(
    inFlight: number,
    sizes: { batchBytes: number; eagerBytes?: number } = { batchBytes: 1 },
  ) {
    let seq = 0;
    const sent: Array<{ seq: number; count: number }> = [];
    const waiting = new Map<number, { ok: () => void; fail: (e: Error) => void }>();
    const s = new BatchShipper({
      app: 'web',
      macState,
      takeSeq: () => ++seq,
      returnSeq: () => {},
      send: (n, body) => {
        sent.push({ seq: n, count: body[0]?.readUInt32BE(12) ?? 0 });
        return new Promise<void>((ok, fail) => {
          waiting.set(n, { ok, fail });
        });
      },
      ...sizes,
      inFlight,
    });
    /** Answers batch `n` once it is on the wire. */
    const answer = async (n: number, err?: Error) => {
      // A batch reaches the wire after its intent is written to disk, some turns of the event loop
      // later (more under load): wait for it on a generous bound, not a count of turns.
      const until = Date.now() + 60_000;
      while (!waiting.has(n) && Date.now() < until) await new Promise((r) => setTimeout(r, 2));
      const w = waiting.get(n);
      if (!w) throw new Error(`batch ${n} was never sent`);
      if (err) w.fail(err);
      else w.ok();
    };
    /** Batches handed to the wire so far: each takes the next number for the open batch at once. */
    const dispatched = () => seq - 1;
    return { s, answer, sent, dispatched };
  }

  const macOf = (block: number) =>
    (macState.macs.get('data') as Buffer).subarray(block * MAC_BYTES, (block + 1) * MAC_BYTES);

  it('keeps the later batch’s MAC of a block sent twice when the later batch is answered first', async () => {
    const { s, answer } = shipper(3);
    const first = randomBytes(BLOCK);
    const second = randomBytes(BLOCK);
    await s.add(volume, 2, first, blockMac(keys.mac, first)); // batch 1
    await s.add(volume, 2, second, blockMac(keys.mac, second)); // batch 2
    const done = s.finish();
    await answer(2);
    await answer(1);
    await done;
    expect(macOf(2).equals(blockMac(keys.mac, second))).toBe(true);
    expect(s.lastAcked).toBe(2);
  });

  it('applies no later batch while an earlier one failed: those blocks are sent again, never assumed held', async () => {
    const { s, answer } = shipper(3);
    const a = randomBytes(BLOCK);
    const b = randomBytes(BLOCK);
    await s.add(volume, 0, a, blockMac(keys.mac, a)); // batch 1
    await s.add(volume, 1, b, blockMac(keys.mac, b)); // batch 2
    const done = s.finish().catch((e: unknown) => e);
    await answer(2);
    await answer(1, new Error('connection reset'));
    expect(await done).toMatchObject({ message: 'connection reset' });
    expect(macOf(0).equals(Buffer.alloc(MAC_BYTES))).toBe(true);
    expect(macOf(1).equals(Buffer.alloc(MAC_BYTES))).toBe(true);
  });

  /** Adds `n` random blocks (block numbers wrap at the volume's 4). */
  async function addRandom(s: BatchShipper, first: number, n: number) {
    for (let b = first; b < first + n; b++) {
      const plain = randomBytes(BLOCK);
      await s.add(volume, b % 4, plain, blockMac(keys.mac, plain)); // the volume has 4 blocks
    }
  }

  it('sends a batch before it is full while none is on the wire, and waits for a full one while one is', async () => {
    // Random blocks: each record is a little over BLOCK bytes.
    const { s, answer, sent, dispatched } = shipper(4, {
      batchBytes: 8 * BLOCK,
      eagerBytes: 2 * BLOCK,
    });
    await addRandom(s, 0, 2); // past eagerBytes with nothing on the wire: out at once
    expect(dispatched()).toBe(1);
    await addRandom(s, 2, 4); // one on the wire: the open batch waits to fill
    expect(dispatched()).toBe(1);
    await addRandom(s, 6, 4); // full (8 blocks' worth): out
    expect(dispatched()).toBe(2);
    const done = s.finish();
    for (const n of [1, 2]) await answer(n);
    await done;
    // Batches may reach the wire out of order (each waits for its own intent write); their numbers say which.
    expect([...sent].sort((x, y) => x.seq - y.seq).map((b) => b.count)).toEqual([2, 8]);
    expect(s.lastAcked).toBe(2);
  });

  it('flush sends the open batch without waiting for its acknowledgement', async () => {
    const { s, answer, dispatched } = shipper(4, { batchBytes: 64 * BLOCK });
    await addRandom(s, 0, 3); // far below a quarter of batchBytes: stays open
    expect(dispatched()).toBe(0);
    await s.flush(); // resolves with the batch on the wire, unanswered
    expect(dispatched()).toBe(1);
    await s.flush(); // nothing open: nothing sent
    expect(dispatched()).toBe(1);
    expect(s.lastAcked).toBe(0);
    const done = s.finish();
    await answer(1);
    await done;
    expect(s.lastAcked).toBe(1);
    expect(macOf(2).equals(Buffer.alloc(MAC_BYTES))).toBe(false);
  });
});
