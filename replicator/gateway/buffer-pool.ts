/**
 * Large buffers kept between uses. Each segment chunk read back for the bucket is up to 16 MiB: a
 * fresh one each time costs the kernel's page faults and zeroing, and V8 a garbage collection
 * every few (the object store's gateway spent about as much CPU on that as on the reads;
 * docs/benchmarks.md). Spares are let go after `idleMs` without a take, so an idle gateway does
 * not hold them.
 */
export class BufferPool {
  readonly #spares: Buffer[] = [];
  #timer: NodeJS.Timeout | undefined;

  constructor(
    /** Every buffer of the pool has this size. */
    readonly size: number,
    /** Spares kept at most (memory held: size × this). */
    private readonly keep: number,
    private readonly idleMs = 30_000,
  ) {}

  /** A buffer of `size` bytes, contents undefined. Give it back once nothing reads it any more. */
  take(): Buffer {
    this.#armRelease();
    return this.#spares.pop() ?? Buffer.allocUnsafeSlow(this.size);
  }

  give(buf: Buffer): void {
    if (buf.length === this.size && this.#spares.length < this.keep) this.#spares.push(buf);
  }

  /** Spares held now (for tests). */
  get spares(): number {
    return this.#spares.length;
  }

  #armRelease(): void {
    if (this.#timer) this.#timer.refresh();
    else {
      this.#timer = setTimeout(() => {
        this.#spares.length = 0;
        this.#timer = undefined;
      }, this.idleMs);
      this.#timer.unref();
    }
  }
}
