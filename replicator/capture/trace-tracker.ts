import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { DrError, errorMessage, systemCode } from '../../core/errors.js';
import { type Logger, silentLog } from '../../core/log.js';
import { DirtyBitmap, MAX_TRACKED_BLOCKS } from './dirty-bitmap.js';
import {
  EVENT,
  inspect,
  removeInstance,
  removeStaleInstances,
  type Traceable,
  writeControl,
} from './tracefs.js';
import { type WriteSample, WriteTally } from './write-tally.js';

export { removeStaleInstances } from './tracefs.js';

export interface TraceTrackerOptions {
  /** Path of a block device (e.g. /dev/loop3). */
  device: string;
  /** Bytes, a power of two. */
  blockSize: number;
  /** Default silentLog. */
  log?: Logger;
  /** tracefs mount point; default /sys/kernel/tracing (fall back to /sys/kernel/debug/tracing). */
  tracefs?: string;
  /** Per-CPU ring buffer size in KiB for the instance (buffer_size_kb); default 4096. */
  bufferKiB?: number;
}

export interface DirtyDrain {
  /** Sorted unique block indexes written since the last drain. */
  blocks: number[];
  /** True when events may have been missed (overrun, lost events, tracker restarted). */
  unsure: boolean;
  /** Why unsure, for logs and `dr status`. */
  reason?: string;
}

/** `dd-22620 [001] ..... 3952.228706: block_bio_queue: 7,1 WS 800 + 8 [dd]`: dev, rwbs, sector, sectors. */
export const BIO_LINE = /: block_bio_queue: (\d+),(\d+) ([A-Z]+) (\d+) \+ (\d+) \[/;
const MARK_LINE = /: tracing_mark_write: (\S+)$/;
/** Printed by trace_pipe where the ring buffer overwrote events it had not read yet. */
const LOST_LINE = /^CPU:\d+ \[LOST (?:(\d+) )?EVENTS\]/;
/**
 * rwbs letters of operations that change data: W write, D discard (and DE secure erase),
 * Z write zeroes on kernels that name it; kernels that do not (6.x here) print N for it and
 * for zone resets, so N counts as a change too. Reads (R) and flushes (F, `+ 0`) do not.
 */
const CHANGES = /[WDZN]/;
/** Writes that carry data; discards and write-zeroes dirty blocks but are not counted in the tally of writes. */
const WRITES = /W/;

/**
 * The trace tracker: a tracefs instance of its own records `block_bio_queue`
 * events for one block device, and a reader turns them into dirty blocks.
 * The kernel does the recording, so the write path pays nothing and no
 * module is loaded. Anything that may have lost an event (ring buffer
 * overrun, the reader stopping, a fresh start) makes the next drain unsure,
 * and the agent then resyncs by scan.
 */
export class TraceTracker {
  private readonly dirty = new DirtyBitmap();
  /** Written bytes against dirtied block bytes since the last takeWrites(). */
  private readonly writes: WriteTally;
  /** Why the next drain is unsure; emptied by drain(). */
  private readonly doubts = new Set<string>(['tracker started']);
  /** Events the LOST lines counted since the last drain. */
  private lostEvents = 0;
  private lostUncounted = false;
  /** The per-CPU overrun counters' sum at the last drain. */
  private overruns = 0;
  /** Set when the reader stops by itself: from then on every drain is unsure. */
  private failure: string | undefined;
  private reader: ChildProcess | undefined;
  private partial = '';
  private readonly waiters = new Map<
    string,
    { timer: NodeJS.Timeout; resolve: () => void; reject: (err: Error) => void }
  >();
  private marks = 0;
  private closing: Promise<void> | undefined;

  private constructor(
    /** Path of the tracefs instance directory. */
    readonly instance: string,
    private readonly device: string,
    private readonly dev: Traceable,
    private readonly blockSize: number,
    private readonly log: Logger,
  ) {
    this.writes = new WriteTally(blockSize);
  }

  static async start({
    device,
    blockSize,
    log = silentLog,
    tracefs,
    bufferKiB = 4096,
  }: TraceTrackerOptions): Promise<TraceTracker> {
    if (!Number.isInteger(blockSize) || blockSize <= 0 || (blockSize & (blockSize - 1)) !== 0) {
      throw new DrError(`block size ${blockSize} for ${device} is not a power of two`, {
        code: 'usage',
        subject: device,
        remedy: 'use a power of two such as 65536',
      });
    }
    if (!Number.isInteger(bufferKiB) || bufferKiB <= 0) {
      throw new DrError(
        `trace buffer size ${bufferKiB} KiB for ${device} is not a positive integer`,
        {
          code: 'usage',
          subject: device,
          remedy: 'leave bufferKiB out for the default of 4096',
        },
      );
    }
    const found = await inspect(device, tracefs);
    if ('reason' in found) {
      throw new DrError(`cannot trace writes to ${device}: ${found.reason}`, {
        code: found.code,
        subject: device,
        remedy: found.remedy,
      });
    }
    const removed = await removeStaleInstances(found.tracefs, log);
    if (removed.length > 0) log.info({ removed }, 'removed trace instances left by dead agents');

    const name = `lifeboat-${process.pid}-${randomBytes(4).toString('hex')}`;
    const dir = join(found.tracefs, 'instances', name);
    try {
      await mkdir(dir);
    } catch (err) {
      throw new DrError(
        `cannot create the trace instance ${dir} for ${device} (${systemCode(err)})`,
        {
          code: 'usage',
          subject: device,
          remedy: `check that ${found.tracefs} is a writable tracefs, or use the scan tracker`,
          cause: err,
        },
      );
    }
    const tracker = new TraceTracker(dir, device, found, blockSize, log.child({ instance: name }));
    try {
      await tracker.control('buffer_size_kb', String(bufferKiB));
      // trace_pipe merges the per-CPU buffers by timestamp; a clock that all CPUs share keeps
      // a sync marker behind every event queued before it, whichever CPU queued it.
      await tracker.control('trace_clock', 'global');
      // The filter takes only a number: MKDEV(major, minor) as the kernel's dev_t (multiplied,
      // because `<<` would turn majors of 2048 and up negative).
      await tracker.control(`${EVENT}/filter`, `dev == ${found.major * 2 ** 20 + found.minor}`);
      await tracker.control(`${EVENT}/enable`, '1');
      await tracker.control('tracing_on', '1');
      const counted = tracker.readOverruns();
      tracker.overruns = typeof counted === 'number' ? counted : 0;
      tracker.startReader();
      await tracker.sync(); // proves the path from the kernel to this process before anyone relies on it
    } catch (err) {
      await tracker.close().catch((closeErr: unknown) => {
        log.warn({ instance: dir, err: errorMessage(closeErr) }, 'trace instance left behind');
      });
      throw err;
    }
    return tracker;
  }

  /** Why tracing cannot be used here (not root, no tracefs, not a block device, …), or undefined when it can. */
  static async unavailable(device: string, tracefs?: string): Promise<string | undefined> {
    const found = await inspect(device, tracefs);
    return 'reason' in found ? `${found.reason}; ${found.remedy}` : undefined;
  }

  /** Resolves once every write queued before the call has been read (a marker written to the instance's trace_marker and read back from trace_pipe). Bounded: rejects after timeoutMs (default 2000). */
  sync(timeoutMs = 2000): Promise<void> {
    if (this.closing) return Promise.reject(this.closedError());
    if (this.failure !== undefined) return Promise.reject(this.failedError(this.failure));
    const token = `lifeboat-sync-${++this.marks}`;
    const seen = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const why = `trace sync timed out after ${timeoutMs} ms`;
        this.doubts.add(why);
        this.settle(token, this.failedError(why));
      }, timeoutMs);
      this.waiters.set(token, { timer, resolve, reject });
    });
    this.control('trace_marker', token).catch((err: Error) => this.settle(token, err));
    return seen;
  }

  /** Blocks written since the previous drain, and whether the tracker is sure. Resets both. */
  drain(): DirtyDrain {
    const reasons = [...this.doubts];
    if (this.closing) {
      reasons.push('tracker closed');
    } else {
      const counted = this.readOverruns();
      if (typeof counted === 'string') {
        reasons.push(counted);
      } else {
        const lost = Math.max(this.lostEvents, counted - this.overruns);
        if (lost > 0) reasons.push(`trace buffer overran: ${lost} events lost`);
        else if (this.lostUncounted) reasons.push('trace buffer overran: events lost');
        this.overruns = counted;
      }
    }
    if (this.failure !== undefined) reasons.push(this.failure);
    this.doubts.clear();
    this.lostEvents = 0;
    this.lostUncounted = false;
    const blocks = this.dirty.take();
    return reasons.length > 0
      ? { blocks, unsure: true, reason: reasons.join('; ') }
      : { blocks, unsure: false };
  }

  /**
   * The bytes written since the last call against the bytes of the blocks they dirtied, at this
   * volume's block size and the compared ones; independent of drain(). Lost events make it an
   * undercount on both sides alike.
   */
  takeWrites(): WriteSample {
    return this.writes.take();
  }

  /** The block sizes takeWrites() counts at. */
  get writeBlockSizes(): readonly number[] {
    return this.writes.blockSizes;
  }

  /** Blocks written since the previous drain, without resetting (for backlog figures). */
  pendingCount(): number {
    return this.dirty.size;
  }

  /** Disables the event, ends the reader and removes the instance; idempotent. */
  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    for (const token of [...this.waiters.keys()]) this.settle(token, this.closedError());
    // Failing to stop recording is harmless: removing the instance below discards it all.
    const warn = (err: unknown) => this.log.warn({ err: errorMessage(err) }, 'stopping the trace');
    await this.control(`${EVENT}/enable`, '0').catch(warn);
    await this.control('tracing_on', '0').catch(warn);
    await this.stopReader();
    await removeInstance(this.instance);
  }

  /**
   * Reading trace_pipe blocks in the kernel until events arrive. A read stream here would
   * hold one of libuv's four thread-pool threads (shared by all file I/O) for good, so a
   * child `cat` does the blocking read and this process reads its stdout pipe; close()
   * ends it with a signal, which interrupts that read.
   */
  private startReader(): void {
    const child = spawn('cat', [join(this.instance, 'trace_pipe')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.reader = child;
    let stderr = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => this.onData(chunk));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-500);
    });
    child.on('error', (err) => this.readerStopped(`trace reader could not run (${err.message})`));
    child.on('close', (code, signal) => {
      const detail = stderr.trim() ? `: ${stderr.trim()}` : '';
      this.readerStopped(`trace reader stopped (${signal ?? `exit code ${code}`}${detail})`);
    });
  }

  private readerStopped(why: string): void {
    if (this.closing || this.failure !== undefined) return;
    this.failure = why;
    this.log.error({ device: this.device }, why);
    for (const token of [...this.waiters.keys()]) this.settle(token, this.failedError(why));
  }

  private async stopReader(): Promise<void> {
    const child = this.reader;
    if (!child || child.pid === undefined || child.exitCode !== null || child.signalCode !== null)
      return;
    const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
    child.kill('SIGTERM');
    if (await within(closed, 2000)) return;
    child.kill('SIGKILL');
    if (!(await within(closed, 2000))) {
      this.log.warn({ pid: child.pid }, 'trace reader did not exit after SIGKILL');
    }
  }

  private onData(chunk: string): void {
    const lines = (this.partial + chunk).split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) this.onLine(line);
  }

  private onLine(line: string): void {
    const bio = BIO_LINE.exec(line);
    if (bio) {
      const count = Number(bio[5]);
      if (count === 0 || !CHANGES.test(bio[3] ?? '')) return;
      // The filter already keeps other devices out; this guards against a filter that failed open.
      if (Number(bio[1]) !== this.dev.major || Number(bio[2]) !== this.dev.minor) return;
      const sector = Number(bio[4]);
      if (WRITES.test(bio[3] ?? '')) this.writes.addSectors(sector, count);
      const first = Math.floor((sector * 512) / this.blockSize);
      const last = Math.floor(((sector + count) * 512 - 1) / this.blockSize);
      if (!this.dirty.addRange(first, last)) {
        this.doubts.add(
          `a write at sector ${sector} is past the ${MAX_TRACKED_BLOCKS} blocks tracked`,
        );
      }
      return;
    }
    const mark = MARK_LINE.exec(line);
    if (mark) {
      this.settle(mark[1] ?? '');
      return;
    }
    const lost = LOST_LINE.exec(line);
    if (lost) {
      if (lost[1] === undefined) this.lostUncounted = true;
      else this.lostEvents += Number(lost[1]);
    }
  }

  private settle(token: string, err?: Error): void {
    const waiter = this.waiters.get(token);
    if (!waiter) return;
    this.waiters.delete(token);
    clearTimeout(waiter.timer);
    if (err) waiter.reject(err);
    else waiter.resolve();
  }

  /** Sum of the per-CPU overrun and dropped-event counters, or why they cannot be read. */
  private readOverruns(): number | string {
    // Synchronous because drain() is: these are small in-memory tracefs files, no disk.
    try {
      const perCpu = join(this.instance, 'per_cpu');
      let sum = 0;
      for (const cpu of readdirSync(perCpu)) {
        const stats = readFileSync(join(perCpu, cpu, 'stats'), 'utf8');
        for (const m of stats.matchAll(/^(?:overrun|commit overrun|dropped events): (\d+)$/gm)) {
          sum += Number(m[1]);
        }
      }
      return sum;
    } catch (err) {
      return `trace buffer statistics are unreadable (${systemCode(err) ?? errorMessage(err)})`;
    }
  }

  private async control(file: string, value: string): Promise<void> {
    await writeControl(join(this.instance, file), value, this.device);
  }

  private closedError(): DrError {
    return new DrError(`the trace tracker for ${this.device} is closed`, {
      code: 'usage',
      subject: this.device,
      remedy: 'start a new tracker',
    });
  }

  private failedError(why: string): DrError {
    return new DrError(`block tracing for ${this.device} failed: ${why}`, {
      code: 'usage',
      subject: this.device,
      remedy:
        'close this tracker and start a new one; its first drain is unsure, so the agent rescans',
    });
  }
}

async function within(p: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  const done = await Promise.race([p.then(() => true), expired]);
  clearTimeout(timer);
  return done;
}
