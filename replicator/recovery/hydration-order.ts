/** The order an on-demand volume's hydrator copies chunks in: those next to what readers touched first, then the rest in runs. */

/**
 * Returns the picker of the next run of chunks [from, to) to copy: a hot chunk alone, else the
 * next run of up to `runChunks` chunks neither local nor being fetched; undefined when none is left.
 */
export function hydrationOrder(
  hot: number[],
  local: Uint8Array,
  inflight: Map<number, Promise<void>>,
  chunks: number,
  runChunks: number,
): () => [number, number] | undefined {
  let next = 0;
  return (): [number, number] | undefined => {
    while (hot.length > 0) {
      const c = hot.shift() as number;
      if (!local[c] && !inflight.has(c)) return [c, c + 1];
    }
    while (next < chunks && (local[next] || inflight.has(next))) next++;
    if (next >= chunks) return undefined;
    const from = next;
    while (next < chunks && next - from < runChunks && !local[next] && !inflight.has(next)) next++;
    return [from, next];
  };
}
