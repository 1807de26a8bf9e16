/** Repeated blocks leave the agent as references; a refused reference goes again as data. */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DrError } from '../../../../core/errors.js';
import { absentMacs } from '../../../../replicator/agent/absent-macs.js';
import {
  BatchShipper,
  type BatchShipperOptions,
  type ShipVolume,
} from '../../../../replicator/agent/batch-shipper.js';
import { MacState } from '../../../../replicator/agent/mac-state.js';
import { FLAG_REF, openBlock } from '../../../../replicator/crypto/block-cipher.js';
import {
  blockMac,
  createWrappedVolumeKey,
  unwrapVolumeKey,
} from '../../../../replicator/crypto/volume-key.js';
import { decodeBatch } from '../../../../replicator/transport/batch-codec.js';
import { tempDir, testKek } from './agent-fixture.js';

const BLOCK = 4096;
const BLOCKS = 32;

describe('BatchShipper and repeated blocks', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let macState: MacState;
  let volume: ShipVolume;
  const kek = testKek();

  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    const keys = unwrapVolumeKey(
      kek,
      createWrappedVolumeKey(kek, 'web', 'data'),
      'web',
      'data',
      BLOCK,
    );
    volume = { name: 'data', id: 0, keys };
    macState = await MacState.open(join(dir, 'state'));
    await macState.load('data', BLOCKS, async () => absentMacs(keys, BLOCKS * BLOCK), false);
  });
  afterEach(async () => {
    await macState.close();
    await cleanup();
  });

  /**
   * A shipper whose gateway keeps every body it took and may refuse some first; `o` replaces
   * options (a `send` of its own keeps nothing).
   */
  function shipper(
    references: boolean,
    refuse?: (body: Buffer) => boolean,
    o: Partial<BatchShipperOptions> = {},
  ) {
    const bodies: Buffer[] = [];
    let seq = 0;
    const s = new BatchShipper({
      app: 'web',
      macState,
      takeSeq: () => ++seq,
      returnSeq: () => {},
      send: async (_n, parts) => {
        const body = Buffer.concat(parts);
        if (refuse?.(body))
          throw new DrError('batch refers to a block the gateway does not hold', {
            code: 'reference_refused',
          });
        bodies.push(body);
      },
      batchBytes: 1024 * 1024,
      inFlight: 2,
      references: () => references,
      ...o,
    });
    const records = () => bodies.flatMap((b) => decodeBatch(b).entries);
    return { s, bodies, records };
  }

  const add = (s: BatchShipper, block: number, plain: Buffer) =>
    s.add(volume, block, plain, blockMac(volume.keys.mac, plain));

  it('sends each content once and its repeats as references, within a batch and against what the gateway holds', async () => {
    const contents = [randomBytes(BLOCK), randomBytes(BLOCK)];
    const refs = shipper(true);
    for (let b = 0; b < 16; b++) await add(refs.s, b, contents[b % 2] as Buffer);
    await refs.s.finish();
    // The same blocks from a shipper that may not send references.
    const plain = shipper(false);
    for (let b = 0; b < 16; b++) await add(plain.s, b, contents[b % 2] as Buffer);
    await plain.s.finish();
    const frames = refs.records();
    expect(frames.filter((e) => e.flags & FLAG_REF)).toHaveLength(14);
    expect(frames.filter((e) => !(e.flags & FLAG_REF)).map((e) => e.block)).toEqual([0, 1]);
    // Block 5 repeats the last block of the batch with its content.
    expect(frames.find((e) => e.block === 5)?.source).toBe(3);
    expect(refs.s.repeatedBlocks).toBe(14);
    // Bytes on the wire, counted: two data records and fourteen small ones, against sixteen.
    expect(plain.records().every((e) => !(e.flags & FLAG_REF))).toBe(true);
    expect(refs.s.bytesSent).toBeLessThan(3 * BLOCK);
    expect(plain.s.bytesSent).toBeGreaterThan(16 * BLOCK);

    // The next cycle: a block written with content the gateway acknowledged holding.
    const next = shipper(true);
    await add(next.s, 20, contents[1] as Buffer);
    await add(next.s, 21, randomBytes(BLOCK));
    await add(next.s, 22, Buffer.alloc(BLOCK)); // zero blocks stay a flag, never a reference
    await next.s.finish();
    const [repeat, fresh, zero] = next.records();
    // Any block acknowledged with that content will do: the odd ones hold it.
    expect((repeat?.source ?? 0) % 2).toBe(1);
    expect(fresh?.source).toBeUndefined();
    expect(zero?.source).toBeUndefined();
  });

  it('holds a repeat of a block still on the wire and sends it as a reference once that batch is acknowledged', async () => {
    const same = randomBytes(BLOCK);
    const bodies: Buffer[] = [];
    const releases: Array<() => void> = [];
    const { s } = shipper(true, undefined, {
      // The gateway takes each batch but acknowledges it only when the test says so.
      send: (_n, parts) =>
        new Promise<void>((resolve) => {
          bodies.push(Buffer.concat(parts));
          releases.push(resolve);
        }),
      batchBytes: BLOCK, // one block a batch
      inFlight: 4,
    });
    await add(s, 0, same);
    await add(s, 1, randomBytes(BLOCK));
    await add(s, 2, same); // block 0's batch is on the wire, unacknowledged
    const newer = randomBytes(BLOCK);
    await add(s, 3, same);
    await add(s, 3, newer); // read again with other content: the held copy is stale
    // Nothing was acknowledged yet: releases are only called below.
    expect(releases.length).toBeLessThanOrEqual(2);
    const done = s.finish();
    // Acknowledge whatever arrives until finish returns.
    let finished = false;
    void done.then(() => {
      finished = true;
    });
    const until = Date.now() + 60_000;
    while (!finished && Date.now() < until) {
      releases.shift()?.();
      await new Promise((r) => setImmediate(r));
    }
    await done;
    const entries = bodies.flatMap((b) => decodeBatch(b).entries);
    const two = entries.filter((e) => e.block === 2);
    expect(two).toHaveLength(1);
    expect((two[0]?.flags ?? 0) & FLAG_REF).toBe(FLAG_REF);
    expect(two[0]?.source).toBe(0);
    // Block 3 went once, with its newer content, as data.
    const three = entries.filter((e) => e.block === 3);
    expect(three).toHaveLength(1);
    expect(three[0]?.source).toBeUndefined();
    expect((macState.macs.get('data') as Buffer).subarray(3 * 16, 4 * 16)).toEqual(
      blockMac(volume.keys.mac, newer),
    );
    expect(s.repeatedBlocks).toBe(1);
  });

  it('sends a batch again with the data when the gateway refuses a reference in it', async () => {
    const same = randomBytes(BLOCK);
    let refusals = 0;
    const r = shipper(true, (body) => {
      const refused = decodeBatch(body).entries.some((e) => e.source !== undefined);
      if (refused) refusals++;
      return refused;
    });
    for (let b = 0; b < 4; b++) await add(r.s, b, same);
    await r.s.finish();
    expect(refusals).toBe(1);
    expect(r.s.refusedBatches).toBe(1);
    expect(r.s.repeatedBlocks).toBe(0);
    expect(r.bodies).toHaveLength(1);
    const body = r.bodies[0] as Buffer;
    const batch = decodeBatch(body);
    expect(batch.entries.map((e) => e.block)).toEqual([0, 1, 2, 3]);
    for (const e of batch.entries) {
      const ctx = { app: 'web', volume: 'data', volumeId: 0, block: e.block, seq: batch.seq };
      expect(openBlock(volume.keys, ctx, body.subarray(e.offset, e.offset + e.length))).toEqual(
        same,
      );
    }
    // Acknowledged as data, the blocks are what the gateway holds: the MAC state says so.
    const macs = macState.macs.get('data') as Buffer;
    expect(macs.subarray(3 * 16, 4 * 16)).toEqual(blockMac(volume.keys.mac, same));
  });
});
