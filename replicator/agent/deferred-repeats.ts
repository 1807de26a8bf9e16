// Blocks that repeat one still on the wire, held until that batch is acknowledged so they can travel as references.

/** A block held back, with a copy of its plaintext (the caller reuses its buffer). */
export interface HeldBlock<V> {
  volume: V;
  block: number;
  plain: Buffer;
  mac: Buffer;
}

/** Plain bytes held at most (bounds memory): past it, a repeat of a block on the wire goes as data. */
const DEFAULT_LIMIT = 16 * 1024 * 1024;

/**
 * A changed block identical to one in a batch that is on the wire but not yet acknowledged
 * cannot be sent as a reference (the gateway may not hold its source yet) and, sent as data,
 * costs its full compressed size: on bench:wan's incremental (a docs tree copied in, whose
 * identical files sit near each other) 139 such blocks went as data, 6 MiB. Held here until
 * every batch that sends that content is acknowledged and applied, they then go as references.
 * Keyed by `volumeId:mac hex` for the content and `volumeId:block` for the block.
 */
export class DeferredRepeats<V extends { id: number }> {
  /** Content key → seq of the latest unapplied batch that sends a block with it. */
  readonly #onWire = new Map<string, number>();
  /** Block key → the block held, its content key beside it. */
  readonly #held = new Map<string, HeldBlock<V> & { content: string }>();
  #bytes = 0;

  constructor(private readonly limit = DEFAULT_LIMIT) {}

  get size(): number {
    return this.#held.size;
  }

  /** Batch `seq` went on the wire with blocks of these content keys. */
  sent(seq: number, contents: Iterable<string>): void {
    for (const c of contents) this.#onWire.set(c, seq);
  }

  /** Batch `seq` and every earlier one are acknowledged and their MACs applied. */
  applied(seq: number, contents: Iterable<string>): void {
    for (const c of contents) if (this.#onWire.get(c) === seq) this.#onWire.delete(c);
  }

  /** Holds the block when a batch on the wire sends its content and room is left; true if held. */
  hold(volume: V, block: number, plain: Buffer, mac: Buffer, content: string): boolean {
    if (!this.#onWire.has(content) || this.#bytes + plain.length > this.limit) return false;
    this.drop(volume.id, block);
    this.#held.set(`${volume.id}:${block}`, {
      volume,
      block,
      plain: Buffer.from(plain),
      mac: Buffer.from(mac),
      content,
    });
    this.#bytes += plain.length;
    return true;
  }

  /** The block was read again (newer content): what was held for it is stale. */
  drop(volumeId: number, block: number): void {
    const key = `${volumeId}:${block}`;
    const h = this.#held.get(key);
    if (!h) return;
    this.#held.delete(key);
    this.#bytes -= h.plain.length;
  }

  /** Takes the held blocks whose content no batch on the wire sends any more (all of them if `all`). */
  take(all = false): HeldBlock<V>[] {
    const out: HeldBlock<V>[] = [];
    for (const [key, h] of this.#held) {
      if (!all && this.#onWire.has(h.content)) continue;
      this.#held.delete(key);
      this.#bytes -= h.plain.length;
      out.push(h);
    }
    return out;
  }
}
