import {
  FLAG_REF,
  RECORD_HEADER_BYTES,
  type RecordHeader,
  readRecordHeader,
  recordLength,
} from '../crypto/block-cipher.js';

const MAGIC = Buffer.from('LBB1');
const HEAD_BYTES = 4 + 8 + 4;

/** A batch's records as the gateway indexes them: where each starts inside the batch. */
export interface BatchEntry extends RecordHeader {
  /** Offset of the record inside the batch bytes. */
  offset: number;
  length: number;
  /** For a reference record (FLAG_REF): the block of the same volume whose content it repeats. */
  source?: number;
}

export interface DecodedBatch {
  seq: number;
  entries: BatchEntry[];
  /** Total length in bytes. */
  length: number;
}

/**
 * magic | seq u64 | count u32 | records. `records` may hold each record in
 * several parts; `count` is then the number of records. TLS authenticates the
 * bytes in transit and GCM each record; the gateway checks the structure and
 * the length, and its segment frame adds the checksum that catches a torn write.
 */
export function encodeBatch(seq: number, records: Buffer[], count = records.length): Buffer[] {
  const head = Buffer.allocUnsafe(HEAD_BYTES);
  MAGIC.copy(head, 0);
  head.writeBigUInt64BE(BigInt(seq), 4);
  head.writeUInt32BE(count, 12);
  // Parts, not one buffer: the transport writes them as they are, without a copy.
  return [head, ...records];
}

/**
 * Reads spans of bytes spread over the chunks a request body arrived in,
 * front to back, copying only a span that straddles two chunks.
 */
class ChunkReader {
  private index = 0;
  private base = 0;
  readonly length: number;

  constructor(private readonly chunks: readonly Buffer[]) {
    this.length = chunks.reduce((n, c) => n + c.length, 0);
  }

  span(offset: number, length: number): Buffer {
    let chunk = this.chunks[this.index];
    while (chunk && offset >= this.base + chunk.length) {
      this.base += chunk.length;
      chunk = this.chunks[++this.index];
    }
    if (!chunk) return Buffer.alloc(0);
    const start = offset - this.base;
    if (start + length <= chunk.length) return chunk.subarray(start, start + length);
    const out = Buffer.alloc(length);
    let copied = chunk.copy(out, 0, start);
    for (let i = this.index + 1; copied < length && i < this.chunks.length; i++) {
      copied += (this.chunks[i] as Buffer).copy(out, copied, 0, length - copied);
    }
    return out.subarray(0, copied);
  }
}

/**
 * Parses and checks a whole batch, given as one buffer or as the chunks it
 * arrived in (then nothing is copied); throws a RangeError saying what is wrong.
 */
export function decodeBatch(input: Buffer | readonly Buffer[]): DecodedBatch {
  const reader = new ChunkReader(Buffer.isBuffer(input) ? [input] : input);
  const head = reader.span(0, HEAD_BYTES);
  if (head.length < HEAD_BYTES || !head.subarray(0, 4).equals(MAGIC)) {
    throw new RangeError('not a Lifeboat batch');
  }
  const seq = Number(head.readBigUInt64BE(4));
  const count = head.readUInt32BE(12);
  const entries: BatchEntry[] = [];
  let o = HEAD_BYTES;
  for (let i = 0; i < count; i++) {
    const h = readRecordHeader(Buffer.from(reader.span(o, RECORD_HEADER_BYTES)));
    const length = recordLength(h);
    if (o + length > reader.length)
      throw new RangeError(`record ${i} runs past the end of the batch`);
    if (h.flags & FLAG_REF) {
      const source = reader.span(o + RECORD_HEADER_BYTES, 4).readUInt32BE(0);
      entries.push({ ...h, offset: o, length, source });
    } else entries.push({ ...h, offset: o, length });
    o += length;
  }
  if (o !== reader.length) throw new RangeError('batch has bytes after its last record');
  return { seq, entries, length: reader.length };
}
