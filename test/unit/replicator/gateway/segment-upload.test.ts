/** Segment bytes into a bucket several chunks at once: the chain from offset 0 only grows over what arrived in order. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Semaphore } from '../../../../replicator/gateway/async-lock.js';
import { chainOf, chunkKey, chunksOf } from '../../../../replicator/gateway/chunk-chains.js';
import type { ObjectBucket } from '../../../../replicator/gateway/object-bucket.js';
import { uploadSegmentBytes } from '../../../../replicator/gateway/segment-upload.js';

/**
 * A bucket in memory whose puts of `failing` keys fail; counts the puts in flight. With `wave`,
 * the first puts are held until that many are in flight at once (so overlap does not depend on
 * timing), the later ones are not.
 */
function memoryBucket(failing: ReadonlySet<string> = new Set(), wave = 1) {
  const objects = new Map<string, Buffer>();
  let inFlight = 0;
  let mostInFlight = 0;
  let open!: () => void;
  const opened = new Promise<void>((r) => {
    open = r;
  });
  const bucket = {
    put: async (key: string, body: Buffer) => {
      inFlight++;
      mostInFlight = Math.max(mostInFlight, inFlight);
      try {
        if (inFlight >= wave) open();
        await opened;
        if (failing.has(key)) throw new Error(`PUT ${key} refused`);
        objects.set(key, Buffer.from(body));
      } finally {
        inFlight--;
      }
    },
    list: async (prefix: string) =>
      [...objects]
        .filter(([k]) => k.startsWith(prefix))
        .map(([key, body]) => ({ key, size: body.length })),
    delete: async (keys: readonly string[]) => {
      for (const k of keys) objects.delete(k);
    },
  };
  return { bucket: bucket as unknown as ObjectBucket, objects, mostInFlight: () => mostInFlight };
}

describe('uploadSegmentBytes', () => {
  let dir: string;
  let segment: Buffer;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-upload-'));
    segment = Buffer.alloc(10_000);
    for (let i = 0; i < segment.length; i++) segment[i] = (i * 7) % 251;
    await writeFile(join(dir, '1.seg'), segment);
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const files = (size: number) => ({
    dir,
    pointIds: [],
    segments: [{ segment: 1, size, path: join(dir, '1.seg') }],
  });

  it('uploads from the end in the bucket to the settled size, several chunks at once, and the bucket reads back the same bytes', async () => {
    const { bucket, objects, mostInFlight } = memoryBucket(new Set(), 3);
    const ends = new Map([[1, 1000]]);
    const sent = await uploadSegmentBytes(files(10_000), ends, {
      bucket,
      app: 'web',
      chunkBytes: 1024,
      atOnce: 3,
    });
    expect(sent).toBe(9000);
    expect(ends.get(1)).toBe(10_000);
    expect(mostInFlight()).toBe(3);
    const chunks = await chunksOf(bucket, 'web');
    expect(chunks[0]?.offset).toBe(1000);
    expect(chunks.every((c) => c.size <= 1024)).toBe(true);
    const back = Buffer.concat(chunks.map((c) => objects.get(c.key) as Buffer));
    expect(back.equals(segment.subarray(1000))).toBe(true);
    // Nothing new: nothing sent.
    expect(
      await uploadSegmentBytes(files(10_000), ends, {
        bucket,
        app: 'web',
        chunkBytes: 1024,
        atOnce: 3,
      }),
    ).toBe(0);
  });

  it('a failed chunk stops the chain there: the chunks after it are deleted, the error is thrown, the next upload starts at the gap', async () => {
    const failing = new Set([chunkKey('web', 1, 2048)]);
    const { bucket, objects } = memoryBucket(failing, 4);
    const ends = new Map<number, number>();
    const options = { bucket, app: 'web', chunkBytes: 1024, atOnce: 4 };
    await expect(uploadSegmentBytes(files(10_000), ends, options)).rejects.toThrow(/refused/);
    expect(ends.get(1)).toBe(2048);
    const { ends: inBucket, orphans } = chainOf(await chunksOf(bucket, 'web'));
    expect(inBucket.get(1)).toBe(2048);
    expect(orphans).toEqual([]);
    failing.clear();
    expect(await uploadSegmentBytes(files(10_000), ends, options)).toBe(10_000 - 2048);
    const chunks = await chunksOf(bucket, 'web');
    expect(chainOf(chunks).ends.get(1)).toBe(10_000);
    const back = Buffer.concat(chunks.map((c) => objects.get(c.key) as Buffer));
    expect(back.equals(segment)).toBe(true);
  });

  it('chainOf names the chunks off the chain from offset 0 as orphans', () => {
    const c = (segment: number, offset: number, size: number) => ({
      segment,
      offset,
      size,
      token: 0,
      key: chunkKey('web', segment, offset),
    });
    const { ends, orphans } = chainOf([
      c(1, 0, 10),
      c(1, 10, 5),
      c(1, 30, 5),
      c(2, 4, 4),
      c(3, 0, 8),
    ]);
    expect([...ends]).toEqual([
      [1, 15],
      [3, 8],
    ]);
    expect(orphans.map((o) => [o.segment, o.offset])).toEqual([
      [1, 30],
      [2, 4],
    ]);
  });
});

describe('Semaphore', () => {
  it('runs at most its limit at once, the rest in call order, and frees the slot of a failed section', async () => {
    const s = new Semaphore(2);
    let running = 0;
    let most = 0;
    const order: number[] = [];
    const section = (i: number) =>
      s.run(async () => {
        running++;
        most = Math.max(most, running);
        await new Promise((r) => setImmediate(r));
        running--;
        order.push(i);
        if (i === 1) throw new Error('section 1 fails');
        return i;
      });
    const results = await Promise.allSettled([0, 1, 2, 3, 4].map(section));
    expect(most).toBe(2);
    expect(order).toEqual([0, 1, 2, 3, 4]);
    expect(results.map((r) => r.status)).toEqual([
      'fulfilled',
      'rejected',
      'fulfilled',
      'fulfilled',
      'fulfilled',
    ]);
  });

  it('refuses a limit below one', () => {
    expect(() => new Semaphore(0)).toThrow(/limit of 1 or more/);
  });
});
