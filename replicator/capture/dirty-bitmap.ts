/** Above this many blocks (512 MiB of bitmap) a range is not recorded: the caller treats it as lost. */
export const MAX_TRACKED_BLOCKS = 2 ** 32;

/**
 * A growable set of block indexes, one bit per block, so a discard of a whole
 * volume costs memory in proportion to the volume (2 MiB for 1 TiB of 64 KiB
 * blocks), not to the number of blocks written.
 */
export class DirtyBitmap {
  private words = new Uint32Array(1024);
  /** One past the highest word that may hold a set bit. */
  private used = 0;
  private count = 0;

  /** How many blocks are set. */
  get size(): number {
    return this.count;
  }

  /** Sets blocks `first` to `last` inclusive; false (and nothing set) when `last` is past MAX_TRACKED_BLOCKS. */
  addRange(first: number, last: number): boolean {
    if (last >= MAX_TRACKED_BLOCKS) return false;
    const lastWord = Math.floor(last / 32);
    this.grow(lastWord + 1);
    this.used = Math.max(this.used, lastWord + 1);
    for (let b = first; b <= last; ) {
      const w = Math.floor(b / 32);
      const bit = b % 32;
      const span = Math.min(32 - bit, last - b + 1);
      const mask = (span === 32 ? 0xffffffff : ((1 << span) - 1) << bit) >>> 0;
      const old = this.words[w] as number;
      this.count += popcount((mask & ~old) >>> 0);
      this.words[w] = old | mask;
      b += span;
    }
    return true;
  }

  /** The set blocks in ascending order; empties the set. */
  take(): number[] {
    const out: number[] = [];
    for (let w = 0; w < this.used; w++) {
      let word = this.words[w] as number;
      while (word !== 0) {
        const low = word & -word;
        out.push(w * 32 + 31 - Math.clz32(low));
        word = (word ^ low) >>> 0;
      }
    }
    this.words.fill(0, 0, this.used);
    this.used = 0;
    this.count = 0;
    return out;
  }

  private grow(words: number): void {
    if (words <= this.words.length) return;
    let length = this.words.length;
    while (length < words) length *= 2;
    const next = new Uint32Array(length);
    next.set(this.words);
    this.words = next;
  }
}

function popcount(x: number): number {
  let v = x - ((x >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}
