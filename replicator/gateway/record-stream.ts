/** Record streaming: a point's records of one volume (or its block MACs) sent as the binary the client reads. */
import type { ServerResponse } from 'node:http';
import type { Writable } from 'node:stream';
import { DrError } from '../../core/errors.js';
import { STREAM_REF_BIT } from '../transport/record-framer.js';
import type { IndexEntry } from './block-store.js';
import type { ReadableReplica } from './gateway-store.js';

/** Block MACs as `block u32 | mac[16]`, 20 bytes each. */
export function sendMacs(res: ServerResponse, entries: readonly IndexEntry[]): void {
  const out = Buffer.allocUnsafe(entries.length * 20);
  entries.forEach((e, i) => {
    out.writeUInt32BE(e.block, i * 20);
    e.mac.copy(out, i * 20 + 4);
  });
  res.writeHead(200, {
    'content-type': 'application/octet-stream',
    'content-length': out.length,
  });
  res.end(out);
}

/** Where a record stream goes: an HTTP answer, or a sealed stream's socket (bulk-records.ts). */
export interface RecordOut {
  sink: Writable;
  /** Announces a successful answer of `length` bytes, before its first byte. */
  begin(length: number): void;
}

/** An HTTP answer as a record stream's destination. */
export function httpRecordOut(res: ServerResponse): RecordOut {
  return {
    sink: res,
    begin: (length) =>
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': length }),
  };
}

/**
 * Streams point `id`'s records of volume `vol` (only those of batches after `since` when it is
 * not -1, and of blocks in [from, to)) as `block u32 | seq u64 | len u32 | record` (a repeated block
 * as the record it repeats, its seq's top bit set), under the app's read lock so retention and
 * GC wait. A missing segment is refused before the first byte; after it, an error cuts the stream.
 */
export async function streamRecords(
  out: RecordOut,
  a: ReadableReplica,
  {
    app,
    vol,
    id,
    since,
    from = 0,
    to = 2 ** 32,
  }: { app: string; vol: string; id: number; since: number; from?: number; to?: number },
): Promise<void> {
  await a.withReadLock(async () => {
    const all = await a.pointEntries(id, vol);
    const entries = all.filter((e) => e.seq > since && e.block >= from && e.block < to);
    // Said before the first byte: once the stream has begun, an error can only cut it off.
    const missing = await a.missingSegments(entries);
    if (missing.length > 0) {
      throw new DrError(
        `the gateway store is missing ${missing.length === 1 ? 'the segment file' : `${missing.length} segment files`} ${missing.join(', ')} that point ${id} of ${app}/${vol} needs`,
        {
          code: 'store_corrupt',
          subject: missing[0] as string,
          remedy: `restore the gateway store from a backup, or use an older point (\`dr verify ${app} --point ID\` tells which still read)`,
        },
      );
    }
    // The length is known: no chunked framing, whose writev made TLS copy every byte once more.
    const total = entries.reduce((n, e) => n + HEAD + e.length, 0);
    out.begin(total);
    const res = out.sink;
    // Records of one point mostly lie back to back in a segment: read runs of them (up to
    // 4 MiB) in one call, the next run while this one is sent. Each run is read straight into
    // the buffer it is sent from, and that buffer is used again once the socket has taken it:
    // fresh 4 MiB buffers per run made the garbage collector mark the whole heap every few runs.
    const free: Buffer[] = [];
    const runs = recordRuns(entries);
    const readRun = async (r: (typeof runs)[number]) => {
      const need = HEAD * r.entries.length + r.length;
      const i = free.findIndex((b) => b.length >= need);
      const buf = i >= 0 ? (free.splice(i, 1)[0] as Buffer) : Buffer.allocUnsafe(need);
      // One readv puts each record just after its frame head: no record moves in memory.
      const framed = frameHeads(buf, r.entries);
      await a.readSpanParts(r.segment, r.offset, framed.records);
      return { buf, frame: framed.frame };
    };
    let next = runs[0] ? readRun(runs[0]) : undefined;
    for (let k = 0; k < runs.length; k++) {
      const { buf, frame } = await (next as ReturnType<typeof readRun>);
      next = runs[k + 1] ? readRun(runs[k + 1] as (typeof runs)[number]) : undefined;
      if (!res.write(frame, () => free.push(buf))) await drainOrClose(res);
      if (res.destroyed) {
        await next?.catch(() => undefined); // the reader went away: let the read finish, then release the lock
        return;
      }
    }
    res.end();
  });
}

const HEAD = 16;

/**
 * Writes each record's frame head into `buf`, leaving room after it for the record: the frame the
 * run is sent as, and the places its records are read into (in the order they lie in the segment).
 */
function frameHeads(buf: Buffer, entries: IndexEntry[]): { frame: Buffer; records: Buffer[] } {
  const records: Buffer[] = [];
  let o = 0;
  for (const e of entries) {
    buf.writeUInt32BE(e.block, o);
    // A repeated block is sent as the record it repeats, under that record's seq, marked.
    buf.writeBigUInt64BE(
      e.recordSeq === undefined ? BigInt(e.seq) : BigInt(e.recordSeq) | STREAM_REF_BIT,
      o + 4,
    );
    buf.writeUInt32BE(e.length, o + 12);
    records.push(buf.subarray(o + HEAD, o + HEAD + e.length));
    o += HEAD + e.length;
  }
  return { frame: buf.subarray(0, o), records };
}

/** Entries grouped into runs that lie back to back in one segment, at most 4 MiB each. */
export function recordRuns(
  entries: readonly IndexEntry[],
): Array<{ segment: number; offset: number; length: number; entries: IndexEntry[] }> {
  const runs: Array<{ segment: number; offset: number; length: number; entries: IndexEntry[] }> =
    [];
  for (const e of entries) {
    const last = runs[runs.length - 1];
    if (
      last &&
      last.segment === e.segment &&
      last.offset + last.length === e.offset &&
      last.length + e.length <= 4 * 1024 * 1024
    ) {
      last.length += e.length;
      last.entries.push(e);
    } else runs.push({ segment: e.segment, offset: e.offset, length: e.length, entries: [e] });
  }
  return runs;
}

/** Waits until a response can take more bytes, or its client has gone. */
function drainOrClose(res: Writable): Promise<void> {
  // A client gone before we listen has already sent its 'close': waiting for it would hold the
  // app's read lock (and so retention, GC and shutdown) forever.
  if (res.destroyed || res.writableEnded) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}
