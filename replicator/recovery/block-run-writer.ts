// Writes a volume's blocks into an image in large runs, the next run decrypted while one is written.
import type { FileHandle } from 'node:fs/promises';

export interface BlockRunWriterOptions {
  /** Largest run of neighbouring blocks in one writev. */
  runBytes?: number;
  /** Runs being written at once while more blocks are decrypted. */
  inFlight?: number;
}

/**
 * Neighbouring blocks go out in one positioned writev of up to 4 MiB (block
 * aligned, since runs start at a block), so a restore is not syscall-bound,
 * and up to two runs are written while the reader decrypts the next blocks.
 * Buffers handed to `add` are held until their run is written: the reader
 * gives a fresh buffer per block. The first write error is thrown by the next
 * `add` or by `flush`.
 */
export class BlockRunWriter {
  private first = 0;
  private next = -1;
  private bytes = 0;
  private buffers: Buffer[] = [];
  private readonly writing = new Set<Promise<void>>();
  private failure: unknown;
  private readonly runBytes: number;
  private readonly inFlight: number;
  /** Bytes handed to the disk so far. */
  written = 0;

  constructor(
    private readonly fh: FileHandle,
    private readonly blockSize: number,
    o: BlockRunWriterOptions = {},
  ) {
    this.runBytes = o.runBytes ?? 4 * 1024 * 1024;
    this.inFlight = o.inFlight ?? 2;
  }

  async add(block: number, data: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.buffers.length > 0 && (block !== this.next || this.bytes >= this.runBytes)) {
      await this.startRun();
    }
    if (this.buffers.length === 0) this.first = block;
    this.buffers.push(data);
    this.bytes += data.length;
    this.next = block + 1;
  }

  /** Writes what is held and waits for every write. */
  async flush(): Promise<void> {
    await this.startRun();
    await Promise.all(this.writing);
    if (this.failure) throw this.failure;
  }

  private async startRun(): Promise<void> {
    if (this.buffers.length === 0) return;
    while (this.writing.size >= this.inFlight) await Promise.race(this.writing);
    if (this.failure) throw this.failure;
    const buffers = this.buffers;
    const bytes = this.bytes;
    const at = this.first * this.blockSize;
    this.buffers = [];
    this.bytes = 0;
    const p: Promise<void> = this.writeRun(buffers, bytes, at)
      .catch((err: unknown) => {
        this.failure ??= err;
      })
      .finally(() => this.writing.delete(p));
    this.writing.add(p);
  }

  private async writeRun(buffers: Buffer[], bytes: number, at: number): Promise<void> {
    const { bytesWritten } = await this.fh.writev(buffers, at);
    if (bytesWritten < bytes) {
      // A short writev: finish the rest piece by piece.
      const all = Buffer.concat(buffers);
      let put = bytesWritten;
      while (put < bytes) {
        const r = await this.fh.write(all, put, bytes - put, at + put);
        put += r.bytesWritten;
      }
    }
    this.written += bytes;
  }
}
