// Writes of authenticated plaintext into an image: through the page cache, or O_DIRECT from page-aligned memory.
import { constants, write, writev } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { promisify } from 'node:util';
import { systemCode } from '../../core/errors.js';

const writevAsync = promisify(writev);
const writeAsync = promisify(write);

/** O_DIRECT's alignment of memory, file offset and length: a page (at least the disk's sector). */
export const DIRECT_ALIGN = 4096;
/** Staging memory per writer: this many chunks at first, each this large (a multiple of 64 KiB). */
const CHUNKS = 4;
const CHUNK_BYTES = 2 * 1024 * 1024;
/**
 * More chunks are made while every one is in use, up to this many (32 MiB): a run waiting for a
 * chunk holds its decrypted blocks, which then outlive V8's young generation and are freed only by
 * full collections (30 a GiB when the fetch outran the disk).
 */
const MAX_CHUNKS = 16;

/** The one part of the WebAssembly global this needs (tsconfig's libs do not declare it). */
declare const WebAssembly: { Memory: new (d: { initial: number }) => { buffer: ArrayBuffer } };

/** The image a read writes into: its descriptor, and a second one opened O_DIRECT where the file system has it. */
export interface ImageFds {
  fd: number;
  /** The same file opened with O_DIRECT (see openDirect); absent: every write goes through `fd`. */
  directFd?: number | undefined;
}

export interface ImageWriter {
  /**
   * Writes `bufs` back to back from byte `at` (a multiple of DIRECT_ALIGN); resolves when all are
   * written. May empty `bufs` once their bytes are staged: the caller hands them over.
   */
  write(bufs: Buffer[], at: number): Promise<void>;
  /** Bytes that went through O_DIRECT so far. */
  readonly directBytes: number;
}

/**
 * Opens `path` a second time with O_DIRECT for writing, or resolves undefined where the file system
 * refuses it (tmpfs answers EINVAL): the caller then writes through the page cache only.
 */
export async function openDirect(path: string): Promise<FileHandle | undefined> {
  try {
    return await open(path, constants.O_WRONLY | constants.O_DIRECT | constants.O_NOFOLLOW);
  } catch (err) {
    if (systemCode(err) === 'EINVAL' || systemCode(err) === 'EOPNOTSUPP') return undefined;
    throw err;
  }
}

/**
 * A writer for one lane. With a direct descriptor it copies each run into page-aligned staging
 * memory (a WebAssembly memory, which starts on a page boundary) and writes it there with
 * O_DIRECT: no copy into the page cache, no writeback later, and the disk works while this side
 * decrypts. A run's unaligned end (the volume's short last block) goes through the page cache.
 * Should the kernel refuse a direct write (EINVAL), this writer falls back to the page cache.
 */
export function imageWriter(fds: ImageFds): ImageWriter {
  if (fds.directFd === undefined) return buffered(fds.fd);
  return new DirectWriter(fds.fd, fds.directFd);
}

function buffered(fd: number): ImageWriter {
  return { write: (bufs, at) => writeFully(fd, bufs, at), directBytes: 0 };
}

class DirectWriter implements ImageWriter {
  directBytes = 0;
  #direct = true;
  readonly #free: Buffer[] = [];
  readonly #waiting: Array<(b: Buffer) => void> = [];
  #chunks = 0;

  constructor(
    private readonly fd: number,
    private readonly directFd: number,
  ) {
    this.#more(CHUNKS);
  }

  /** `n` more chunks of page-aligned memory (a WebAssembly memory starts on a page boundary). */
  #more(n: number): void {
    const memory = new WebAssembly.Memory({ initial: (n * CHUNK_BYTES) / 65536 });
    for (let i = 0; i < n; i++) {
      this.#free.push(Buffer.from(memory.buffer, i * CHUNK_BYTES, CHUNK_BYTES));
    }
    this.#chunks += n;
  }

  async write(bufs: Buffer[], at: number): Promise<void> {
    if (!this.#direct) return writeFully(this.fd, bufs, at);
    // The whole run goes into staging first and `bufs` is emptied before the disk is waited for:
    // decrypted blocks held until their write lands outlived V8's young generation, so each was
    // freed only by a full collection (30 a GiB).
    const staged: Array<{ chunk: Buffer; n: number; at: number }> = [];
    try {
      let i = 0;
      let off = 0;
      while (i < bufs.length) {
        const chunk = await this.#take();
        // Fill the chunk from the run; only the run's last piece can end unaligned.
        let n = 0;
        while (i < bufs.length && n < chunk.length) {
          const b = bufs[i] as Buffer;
          const c = b.copy(chunk, n, off);
          n += c;
          off += c;
          if (off === b.length) {
            i++;
            off = 0;
          }
        }
        staged.push({ chunk, n, at });
        at += n;
      }
      bufs.length = 0;
      for (let s = staged.shift(); s; s = staged.shift()) {
        try {
          await this.#put(s.chunk, s.n, s.at);
        } finally {
          this.#give(s.chunk);
        }
      }
    } finally {
      for (const s of staged) this.#give(s.chunk);
    }
  }

  /** Writes chunk[0, n) at `at`: its aligned part O_DIRECT, the rest (or all, after a refusal) buffered. */
  async #put(chunk: Buffer, n: number, at: number): Promise<void> {
    const aligned = this.#direct ? n - (n % DIRECT_ALIGN) : 0;
    let done = 0;
    while (done < aligned) {
      let put: number;
      try {
        put = (await writeAsync(this.directFd, chunk, done, aligned - done, at + done))
          .bytesWritten;
      } catch (err) {
        if (systemCode(err) !== 'EINVAL') throw err;
        this.#direct = false; // the kernel wants another alignment: the page cache from here on
        break;
      }
      done += put;
      this.directBytes += put;
      if (put === 0 || done % DIRECT_ALIGN !== 0) break; // a short write: the rest buffered
    }
    if (done < n) await writeFully(this.fd, [chunk.subarray(done, n)], at + done);
  }

  #take(): Promise<Buffer> {
    if (this.#free.length === 0 && this.#chunks < MAX_CHUNKS) this.#more(1);
    const b = this.#free.pop();
    if (b) return Promise.resolve(b);
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  #give(b: Buffer): void {
    const next = this.#waiting.shift();
    if (next) next(b);
    else this.#free.push(b);
  }
}

/** A positioned writev of `bufs` at `at`, carried on after a short write. */
export async function writeFully(fd: number, bufs: Buffer[], at: number): Promise<void> {
  const bytes = bufs.reduce((n, b) => n + b.length, 0);
  const put = (await writevAsync(fd, bufs, at)).bytesWritten;
  if (put >= bytes) return;
  // A short writev: the rest in one buffer.
  const rest = Buffer.concat(bufs).subarray(put);
  let done = 0;
  while (done < rest.length) {
    done += (await writevAsync(fd, [rest.subarray(done)], at + put + done)).bytesWritten;
  }
}
