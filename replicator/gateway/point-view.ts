/** A point's whole view (every block of every volume), overlaid from its indexes; the latest one is kept in memory. */
import type { PointInfo } from './catalog.js';
import { type IndexEntry, overlayEntries, readPointIndex } from './point-index.js';

export class PointView {
  /** The view of the latest point, every volume, sorted by (volume, block). */
  #latest: { pointId: number; entries: IndexEntry[] } | undefined;

  constructor(private readonly indexPath: (id: number) => string) {}

  /** The view at `pointId`, read from the indexes of it and every point before it unless kept. */
  async at(points: readonly PointInfo[], pointId: number): Promise<IndexEntry[]> {
    if (pointId === this.#latest?.pointId) return this.#latest.entries;
    let view: IndexEntry[] = [];
    for (const p of points) {
      if (p.id > pointId) break;
      view = overlayEntries(view, await readPointIndex(this.indexPath(p.id), p.id));
    }
    if (pointId === points.at(-1)?.id) this.#latest = { pointId, entries: view };
    return view;
  }

  /** A point `id` was committed after `previous` with these entries: the kept view moves on. */
  committed(previous: number | undefined, id: number, entries: readonly IndexEntry[]): void {
    this.#latest =
      this.#latest && this.#latest.pointId === previous
        ? { pointId: id, entries: overlayEntries(this.#latest.entries, [...entries]) }
        : undefined;
  }

  /** Drops the kept view (its offsets may name compacted segments). */
  forget(): void {
    this.#latest = undefined;
  }
}
