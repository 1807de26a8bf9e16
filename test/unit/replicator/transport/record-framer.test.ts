// Records come out whole and in order however the stream is cut into chunks.
import { randomBytes, randomInt } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { RecordFramer } from '../../../../replicator/transport/record-framer.js';

function stream(records: Buffer[]): Buffer {
  return Buffer.concat(
    records.flatMap((r, i) => {
      const head = Buffer.alloc(16);
      head.writeUInt32BE(i, 0);
      head.writeBigUInt64BE(BigInt(i * 10), 4);
      head.writeUInt32BE(r.length, 12);
      return [head, r];
    }),
  );
}

describe('RecordFramer', () => {
  it.each([1, 7, 16, 17, 4096, 16384, 70000, 1 << 20])(
    'frames every record from chunks of %i bytes',
    (size) => {
      const records = Array.from({ length: 40 }, (_, i) =>
        randomBytes(i % 5 === 0 ? 16 : randomInt(16, 70000)),
      );
      const all = stream(records);
      const framer = new RecordFramer();
      const got: Array<{ block: number; seq: number; record: Buffer }> = [];
      for (let o = 0; o < all.length; o += size) {
        for (const r of framer.push(all.subarray(o, o + size)))
          got.push({ ...r, record: Buffer.from(r.record) });
      }
      expect(framer.leftover).toBe(0);
      expect(got.map((r) => r.block)).toEqual(records.map((_, i) => i));
      expect(got.map((r) => r.seq)).toEqual(records.map((_, i) => i * 10));
      got.forEach((r, i) => {
        expect(r.record.equals(records[i] as Buffer)).toBe(true);
      });
    },
  );

  it('frames random cuts, and reports a stream cut off inside a record', () => {
    const records = Array.from({ length: 30 }, () => randomBytes(randomInt(16, 100_000)));
    const all = stream(records);
    const framer = new RecordFramer();
    let n = 0;
    let o = 0;
    const end = all.length - 5; // the last 5 bytes never arrive
    while (o < end) {
      const size = Math.min(end - o, randomInt(1, 50_000));
      n += framer.push(all.subarray(o, o + size)).length;
      o += size;
    }
    expect(n).toBe(records.length - 1);
    expect(framer.leftover).toBeGreaterThan(0);
  });
});
