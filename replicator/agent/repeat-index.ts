import { MAC_BYTES } from '../crypto/volume-key.js';

/** MAC prefixes remembered per volume by default: 1 Mi blocks (64 GiB of 64 KiB blocks), about 80 MiB. */
const DEFAULT_LIMIT = 1 << 20;

/**
 * Finds a block of a volume whose MAC, as the gateway holds it, is a given one: a changed block
 * with that MAC travels as a reference to it instead of as data. Keyed by the MAC's first 48 bits
 * and checked against the full MAC table, so a stale or colliding entry is a miss, never a wrong
 * answer. Bounded: past `limit` blocks the least recently noted are forgotten.
 */
export class RepeatIndex {
  readonly #blocks = new Map<number, number>();

  constructor(
    /** The volume's MAC table (16 bytes a block), read at every lookup. */
    private readonly macs: Buffer,
    /** All-zero blocks travel as a flag, so they are never a source. */
    private readonly zeroMac: Buffer,
    private readonly limit = DEFAULT_LIMIT,
  ) {
    for (let b = 0; (b + 1) * MAC_BYTES <= macs.length; b++) this.note(b);
  }

  /** Remembers the MAC the table now holds for `block`. */
  note(block: number): void {
    const at = block * MAC_BYTES;
    if (at + MAC_BYTES > this.macs.length) return;
    if (this.macs.compare(this.zeroMac, 0, MAC_BYTES, at, at + MAC_BYTES) === 0) return;
    const key = this.macs.readUIntBE(at, 6);
    this.#blocks.delete(key);
    if (this.#blocks.size >= this.limit) {
      const oldest = this.#blocks.keys().next().value;
      if (oldest !== undefined) this.#blocks.delete(oldest);
    }
    this.#blocks.set(key, block);
  }

  /** A block whose MAC in the table is `mac`, or undefined. */
  find(mac: Buffer): number | undefined {
    const block = this.#blocks.get(mac.readUIntBE(0, 6));
    if (block === undefined) return undefined;
    const at = block * MAC_BYTES;
    return this.macs.compare(mac, 0, MAC_BYTES, at, at + MAC_BYTES) === 0 ? block : undefined;
  }
}
