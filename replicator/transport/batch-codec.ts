import { crc32 } from 'node:zlib';
import { type RecordHeader, readRecordHeader, recordLength } from '../crypto/block-cipher.js';

const MAGIC = Buffer.from('LBB1');
const HEAD_BYTES = 4 + 8 + 4;
const SUM_BYTES = 4;

/** A batch's records as the gateway indexes them: where each starts inside the batch. */
export interface BatchEntry extends RecordHeader {
  /** Offset of the record inside the batch bytes. */
  offset: number;
  length: number;
}

export interface DecodedBatch {
  seq: number;
  entries: BatchEntry[];
}

/**
 * magic | seq u64 | count u32 | records | crc32 of all before. TLS already
 * authenticates the bytes in transit and GCM each record; the CRC catches a
 * batch cut short or damaged on its way through memory and disk.
 */
export function encodeBatch(seq: number, records: Buffer[]): Buffer {
  const head = Buffer.allocUnsafe(HEAD_BYTES);
  MAGIC.copy(head, 0);
  head.writeBigUInt64BE(BigInt(seq), 4);
  head.writeUInt32BE(records.length, 12);
  const out = Buffer.concat([head, ...records, Buffer.alloc(SUM_BYTES)]);
  out.writeUInt32BE(crc32(out.subarray(0, out.length - SUM_BYTES)), out.length - SUM_BYTES);
  return out;
}

/** Parses and checks a whole batch; throws a RangeError saying what is wrong. */
export function decodeBatch(buf: Buffer): DecodedBatch {
  if (buf.length < HEAD_BYTES + SUM_BYTES || !buf.subarray(0, 4).equals(MAGIC)) {
    throw new RangeError('not a Lifeboat batch');
  }
  const body = buf.subarray(0, buf.length - SUM_BYTES);
  if (crc32(body) !== buf.readUInt32BE(buf.length - SUM_BYTES)) {
    throw new RangeError('batch checksum does not match (cut off or damaged in transit)');
  }
  const seq = Number(buf.readBigUInt64BE(4));
  const count = buf.readUInt32BE(12);
  const entries: BatchEntry[] = [];
  let o = HEAD_BYTES;
  for (let i = 0; i < count; i++) {
    const h = readRecordHeader(body, o);
    const length = recordLength(h);
    if (o + length > body.length)
      throw new RangeError(`record ${i} runs past the end of the batch`);
    entries.push({ ...h, offset: o, length });
    o += length;
  }
  if (o !== body.length) throw new RangeError('batch has bytes after its last record');
  return { seq, entries };
}
