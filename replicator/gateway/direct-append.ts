/** Segment appends with O_DIRECT: whole pages from aligned memory, straight to the disk. */
import type { FileHandle } from 'node:fs/promises';
import { allocAligned } from '../../core/aligned-buffer.js';

/** O_DIRECT writes cover whole pages, at page offsets. */
export const PAGE = 4096;

/** The file a segment's appends go to. */
export interface Writer {
  segment: number;
  fh: FileHandle;
  /** Opened with O_DIRECT: appends bypass the page cache (see `writeDirect`). */
  direct: boolean;
  /** The bytes of the file's last, partial page, and where that page ends (the file size) when known. */
  tail?: { bytes: Buffer; end: number } | undefined;
}

/**
 * Appends a frame with O_DIRECT: the disk takes it straight from our
 * memory. Through the page cache, copying each stored byte into it was
 * the gateway's largest cost after TLS, and its write-back slowed every
 * other writer on the machine. Direct writes cover whole pages: the
 * frame is assembled after the bytes of the file's last partial page
 * (rewritten unchanged), padded with zeros, and the file is then cut back
 * to the frame's end. A crash before that cut leaves zeros after the last
 * frame, which recovery cuts off like any torn tail.
 */
export async function writeDirect(
  writer: Writer,
  start: number,
  parts: readonly Uint8Array[],
  read: (segment: number, offset: number, length: number) => Promise<Buffer>,
  /** A page-aligned buffer reused across appends, grown when too small. */
  scratch: { aligned?: Buffer },
): Promise<void> {
  const pageStart = start - (start % PAGE);
  let tail = writer.tail;
  if (!tail || tail.end !== start) {
    tail = { bytes: await read(writer.segment, pageStart, start - pageStart), end: start };
  }
  const frameLength = parts.reduce((n, p) => n + p.length, 0);
  const used = tail.bytes.length + frameLength;
  const length = Math.ceil(used / PAGE) * PAGE;
  if (!scratch.aligned || scratch.aligned.length < length) scratch.aligned = allocAligned(length);
  const buf = scratch.aligned;
  let o = tail.bytes.copy(buf, 0);
  for (const p of parts) {
    buf.set(p, o);
    o += p.length;
  }
  buf.fill(0, o, length);
  writer.tail = undefined; // unknown until the write has gone through
  for (let done = 0; done < length; ) {
    const { bytesWritten } = await writer.fh.write(buf, done, length - done, pageStart + done);
    if (bytesWritten <= 0 || bytesWritten % PAGE !== 0) {
      throw new Error(`direct write of ${length} bytes stopped after ${done + bytesWritten}`);
    }
    done += bytesWritten;
  }
  const end = start + frameLength;
  if (pageStart + length !== end) await writer.fh.truncate(end);
  const lastPage = end - (end % PAGE);
  writer.tail = { bytes: Buffer.from(buf.subarray(lastPage - pageStart, used)), end };
}
