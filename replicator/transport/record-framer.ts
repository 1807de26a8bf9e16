// Cuts the gateway's record stream (block u32 | seq u64 | len u32 | record) out of the chunks it arrives in.
// A seq with its top bit set marks a repeated block: the record is the one of the block it repeats.

export interface FramedRecord {
  block: number;
  seq: number;
  /**
   * Set when block `block` repeats another block's content: the record is that block's (this
   * index), stored once at the gateway, and `seq` is its batch.
   */
  recordBlock?: number;
  /** Valid until the next `push`: a view of the arriving chunk where the record lies inside one. */
  record: Buffer;
}

const HEAD = 16;

/**
 * Frames records out of network chunks with at most one copy of each byte: a
 * record inside one chunk is a view of it; one that straddles chunks is joined
 * once, when its last byte has arrived (TLS hands over 16 KiB at a time, so a
 * 64 KiB record usually straddles four). Joining the pending bytes with every
 * new chunk instead copied each byte of such a record 2.5 times.
 */
export class RecordFramer {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes the record being assembled needs in all (head included); 0 while its head is incomplete. */
  private need = 0;

  /** The records completed by `chunk`, in order. */
  push(chunk: Buffer): FramedRecord[] {
    const out: FramedRecord[] = [];
    let c = chunk;
    if (this.pendingBytes > 0) {
      // Finish the straddling record first.
      if (this.need === 0 && this.pendingBytes + c.length >= HEAD) {
        const head = Buffer.concat([...this.pending, c.subarray(0, HEAD - this.pendingBytes)]);
        this.need = HEAD + head.readUInt32BE(12);
      }
      if (this.need === 0 || this.pendingBytes + c.length < this.need) {
        this.pending.push(c);
        this.pendingBytes += c.length;
        return out;
      }
      const take = this.need - this.pendingBytes;
      const whole = Buffer.concat([...this.pending, c.subarray(0, take)], this.need);
      out.push(frame(whole, 0));
      this.pending = [];
      this.pendingBytes = 0;
      this.need = 0;
      c = c.subarray(take);
    }
    let o = 0;
    while (c.length - o >= HEAD) {
      const len = c.readUInt32BE(o + 12);
      if (c.length - o < HEAD + len) break;
      out.push(frame(c, o));
      o += HEAD + len;
    }
    if (o < c.length) {
      const rest = c.subarray(o);
      this.pending.push(rest);
      this.pendingBytes = rest.length;
      if (rest.length >= HEAD) this.need = HEAD + rest.readUInt32BE(12);
    }
    return out;
  }

  /** Bytes of a record not yet complete. */
  get leftover(): number {
    return this.pendingBytes;
  }
}

/** The top bit of a streamed seq: the record is another block's (a resolved reference). */
export const STREAM_REF_BIT = 1n << 63n;

function frame(buf: Buffer, o: number): FramedRecord {
  const len = buf.readUInt32BE(o + 12);
  const raw = buf.readBigUInt64BE(o + 4);
  const record = buf.subarray(o + HEAD, o + HEAD + len);
  const block = buf.readUInt32BE(o);
  if ((raw & STREAM_REF_BIT) === 0n) return { block, seq: Number(raw), record };
  // The record header's block (after volumeId u16) names the block whose record it is.
  const recordBlock = len >= 6 ? record.readUInt32BE(2) : block;
  return { block, seq: Number(raw & ~STREAM_REF_BIT), record, recordBlock };
}
