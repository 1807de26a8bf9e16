/** The order an on-demand volume's hydrator copies chunks in: those next to what readers touched first, then the rest in runs. */

export interface HydrationOrderOptions {
  /** Chunks next to what readers touched, most recent last: copied first, one at a time. */
  hot: number[];
  /** 1 where a chunk is local already. */
  local: Uint8Array;
  /** Chunks being fetched (by a reader or another lane). */
  inflight: Map<number, Promise<void>>;
  chunks: number;
  /** How many blocks the gateway holds a record for in chunk `c`. */
  storedIn: (c: number) => number;
  /** A run ends once it holds this many stored blocks... */
  runBlocks: number;
  /** ...or this many chunks to copy. */
  runChunks: number;
}

/**
 * Returns the picker of the next chunks to copy in one request: a hot chunk alone, else a run in
 * address order of chunks neither local nor being fetched, holding up to `runBlocks` stored
 * blocks. A run steps over local chunks that hold no data (the holes of a sparse volume, never
 * fetched), so a volume written in scattered extents is still copied in large requests; it ends
 * at a chunk being fetched or one local with data (a request spanning it would send its blocks
 * again). Undefined when nothing is left.
 */
export function hydrationOrder(o: HydrationOrderOptions): () => number[] | undefined {
  const { hot, local, inflight, chunks, storedIn } = o;
  const free = (c: number) => !local[c] && !inflight.has(c);
  let next = 0;
  return (): number[] | undefined => {
    while (hot.length > 0) {
      const c = hot.shift() as number;
      if (free(c)) return [c];
    }
    while (next < chunks && !free(next)) next++;
    if (next >= chunks) return undefined;
    const run: number[] = [];
    let blocks = 0;
    while (next < chunks && blocks < o.runBlocks && run.length < o.runChunks) {
      if (free(next)) {
        run.push(next);
        blocks += storedIn(next);
      } else if (inflight.has(next) || storedIn(next) > 0) break;
      next++;
    }
    return run;
  };
}
