/** Reads of a segment file through the log's cache of open handles; a short read means the store lost data. */
import { errorMessage, systemCode } from '../../core/errors.js';
import type { FileHandleCache } from './file-handle-cache.js';
import { corruptSegment } from './segment-errors.js';

function unreadable(path: string, err: unknown): never {
  throw corruptSegment(path, `cannot be read (${systemCode(err) ?? errorMessage(err)})`, err);
}

function shortRead(path: string, offset: number, length: number): Error {
  return corruptSegment(path, `ends before the record at ${offset} (+${length} bytes)`);
}

/** `length` bytes at `offset` of the file (into `into` when given, which must hold them). */
export async function readAt(
  readers: FileHandleCache,
  path: string,
  offset: number,
  length: number,
  into?: Buffer,
): Promise<Buffer> {
  const buf = into ? into.subarray(0, length) : Buffer.allocUnsafe(length);
  if (buf.length < length)
    throw new RangeError(`a ${into?.length}-byte buffer cannot take ${length}`);
  const got = await readers
    .use(path, async (fh) => {
      let n = 0;
      while (n < length) {
        const { bytesRead } = await fh.read(buf, n, length - n, offset + n);
        if (bytesRead === 0) break;
        n += bytesRead;
      }
      return n;
    })
    .catch((err: unknown) => unreadable(path, err));
  if (got !== length) throw shortRead(path, offset, length);
  return buf;
}

/** Neighbouring bytes at `offset` of the file straight into `parts`, filled in order (readv). */
export async function readPartsAt(
  readers: FileHandleCache,
  path: string,
  offset: number,
  parts: Buffer[],
): Promise<void> {
  const length = parts.reduce((n, b) => n + b.length, 0);
  const got = await readers
    .use(path, async (fh) => {
      let n = 0;
      let rest = parts;
      while (n < length) {
        const { bytesRead } = await fh.readv(rest, offset + n);
        if (bytesRead === 0) break;
        n += bytesRead;
        rest = unread(rest, bytesRead);
      }
      return n;
    })
    .catch((err: unknown) => unreadable(path, err));
  if (got !== length) throw shortRead(path, offset, length);
}

/** What of `parts` a read of `n` bytes into them left unfilled. */
function unread(parts: Buffer[], n: number): Buffer[] {
  let i = 0;
  while (i < parts.length && n >= (parts[i] as Buffer).length) n -= (parts[i++] as Buffer).length;
  const rest = parts.slice(i);
  if (n > 0 && rest[0]) rest[0] = rest[0].subarray(n);
  return rest;
}
