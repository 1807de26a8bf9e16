// Writes of authenticated plaintext into an image: through the page cache, or O_DIRECT from page-aligned memory.
import { constants, write, writev } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { promisify } from 'node:util';
import { systemCode } from '../../core/errors.js';

const writevAsync = promisify(writev);
const writeAsync = promisify(write);

/** O_DIRECT's alignment of memory, file offset and length: a page (at least the disk's sector). */
export const DIRECT_ALIGN = 4096;
/** Staging memory per writer: this many chunks in flight, each this large (a multiple of 64 KiB). */
const CHUNKS = 4;
const CHUNK_BYTES = 2 * 1024 * 1024;

/** The one part of the WebAssembly global this needs (tsconfig's libs do not declare it). */
declare const WebAssembly: { Memory: new (d: { initial: number }) => { buffer: ArrayBuffer } };

/** The image a read writes into: its descriptor, and a second one opened O_DIRECT where the file system has it. */
export interface ImageFds {
  fd: number;
  /** The same file opened with O_DIRECT (see openDirect); absent: every write goes through `fd`. */
  directFd?: number | undefined;
}

export interface ImageWriter {
  /** Writes `bufs` back to back from byte `at` (a multiple of DIRECT_ALIGN); resolves when all are written. */
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

  constructor(
    private readonly fd: number,
    private readonly directFd: number,
  ) {
    const memory = new WebAssembly.Memory({ initial: (CHUNKS * CHUNK_BYTES) / 65536 });
    for (let i = 0; i < CHUNKS; i++) {
      this.#free.push(Buffer.from(memory.buffer, i * CHUNK_BYTES, CHUNK_BYTES));
    }
  }

  async write(bufs: Buffer[], at: number): Promise<void> {
    if (!this.#direct) return writeFully(this.fd, bufs, at);
    let i = 0;
    let off = 0;
    while (i < bufs.length) {
      const chunk = await this.#take();
      try {
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
        await this.#put(chunk, n, at);
        at += n;
      } finally {
        this.#give(chunk);
      }
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
