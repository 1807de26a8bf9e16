/**
 * Log lines to standard error that never throw. A pipe that nobody reads fills up, and a write
 * to it then fails with EAGAIN (Node puts a pipe's fd in non-blocking mode once it opens it as a
 * stream). Thrown from a log call, that error ended the process with code 1 and no word, since
 * its own message could not be written either: a gateway whose supervisor stalled reading its
 * output died. A full pipe is waited out a bounded while; past that, lines are dropped without
 * waiting until one gets through again, and that one says how many were dropped.
 */
import { writeSync } from 'node:fs';

export interface StderrWriterOptions {
  fd?: number;
  /** How long one line waits for a full pipe before it is dropped, in ms. */
  waitMs?: number;
  /** Writes from `offset` and answers the bytes written (fs.writeSync; tests give their own). */
  write?: (fd: number, buf: Buffer, offset: number) => number;
  /** Blocks this long (a log call is synchronous: it cannot await). */
  sleep?: (ms: number) => void;
}

const cell = new Int32Array(new SharedArrayBuffer(4));
const STEP_MS = 10;

/** A writer of whole lines to `fd` (2) that drops lines rather than throw or block for long. */
export function stderrWriter({
  fd = 2,
  waitMs = 1000,
  write = (f, buf, offset) => writeSync(f, buf, offset),
  sleep = (ms) => Atomics.wait(cell, 0, 0, ms),
}: StderrWriterOptions = {}): (line: string) => void {
  let dropped = 0;
  /** Whether all of `buf` went out; a full pipe is retried for `patience` ms. */
  const send = (buf: Buffer, patience: number): boolean => {
    let offset = 0;
    let waited = 0;
    while (offset < buf.length) {
      try {
        offset += write(fd, buf, offset);
      } catch (err) {
        // EPIPE and the like (nobody reads at all) drop the line at once, as a full pipe does late.
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN' || waited >= patience) return false;
        sleep(STEP_MS);
        waited += STEP_MS;
      }
    }
    return true;
  };
  return (line) => {
    const note =
      dropped > 0
        ? `(${dropped} log line${dropped === 1 ? '' : 's'} dropped: standard error was not being read)\n`
        : '';
    // While lines are being dropped the reader is stuck, not this process: no more waiting.
    if (send(Buffer.from(note + line), dropped > 0 ? 0 : waitMs)) dropped = 0;
    else dropped++;
  };
}
