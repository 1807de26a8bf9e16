import { createHash } from 'node:crypto';

export const RECORD_BYTES = 4096;

/**
 * Checks a file written by test/fixtures/record-writer.mjs: every record
 * intact and numbered 0, 1, 2, … with no gap. Returns how many, or throws
 * naming the first bad record. `first` is the number the data starts at.
 */
export function checkRecordPrefix(data: Buffer, first = 0): number {
  if (data.length % RECORD_BYTES !== 0) {
    throw new Error(`records file is ${data.length} bytes, not a whole number of records`);
  }
  const n = data.length / RECORD_BYTES;
  for (let i = 0; i < n; i++) {
    const r = data.subarray(i * RECORD_BYTES, (i + 1) * RECORD_BYTES);
    const sum = createHash('sha256')
      .update(r.subarray(0, RECORD_BYTES - 32))
      .digest();
    if (!sum.equals(r.subarray(RECORD_BYTES - 32)))
      throw new Error(`record ${first + i} is damaged`);
    const seq = Number(r.readBigUInt64BE(0));
    if (seq !== first + i) throw new Error(`record ${first + i} holds sequence ${seq}: a gap`);
  }
  return n;
}
