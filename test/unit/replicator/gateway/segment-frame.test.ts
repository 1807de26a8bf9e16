/** The segment frame format: what is encoded reads back; a damaged frame is named, never returned. */
import { describe, expect, it } from 'vitest';
import {
  encodeFrame,
  FRAME_BATCH,
  FRAME_HEAD_BYTES,
  readFrame,
} from '../../../../replicator/gateway/segment-frame.js';

const reader = (file: Buffer) => async (_segment: number, offset: number, length: number) =>
  file.subarray(offset, offset + length);

describe('segment frames', () => {
  it('reads back an encoded frame and says where the next one starts', async () => {
    const payload = Buffer.from('a batch');
    const file = Buffer.concat([encodeFrame(FRAME_BATCH, payload), Buffer.alloc(3)]);
    const r = await readFrame(reader(file), 7, 0, file.length);
    expect(r.frame).toEqual({ segment: 7, start: 0, kind: FRAME_BATCH, payload });
    expect(r.end).toBe(FRAME_HEAD_BYTES + payload.length + 4);
  });

  it('names a checksum mismatch, a bad magic, an unknown kind and a cut-off frame', async () => {
    const good = encodeFrame(FRAME_BATCH, Buffer.from('xyz'));
    const flipped = Buffer.from(good);
    flipped.writeUInt8(flipped.readUInt8(FRAME_HEAD_BYTES) ^ 1, FRAME_HEAD_BYTES);
    const kind = Buffer.from(good);
    kind[4] = 9;
    const magic = Buffer.from(good);
    magic[0] = 0;
    for (const [file, problem] of [
      [flipped, 'frame checksum does not match'],
      [kind, 'unknown frame kind 9'],
      [magic, 'no frame magic'],
      [good.subarray(0, good.length - 1), 'frame cut short'],
    ] as const) {
      const r = await readFrame(reader(file), 1, 0, file.length);
      expect(r.frame).toBeUndefined();
      expect(r.problem).toBe(problem);
    }
  });
});
