// The hydrator's picks: hot chunks first, then runs by stored blocks that step over holes.
import { describe, expect, it } from 'vitest';
import { hydrationOrder } from '../../../../replicator/recovery/hydration-order.js';

/** 12 chunks: data in 0-1, a hole at 2-4, data in 5-7, a hole at 8-9, data in 10-11. */
const STORED = [16, 16, 0, 0, 0, 16, 16, 16, 0, 0, 16, 16];

function picker(o: { hot?: number[]; local?: number[]; inflight?: number[]; runBlocks?: number }) {
  const local = new Uint8Array(STORED.length);
  // a fresh local copy: the holes are local already
  STORED.forEach((n, c) => {
    if (n === 0) local[c] = 1;
  });
  for (const c of o.local ?? []) local[c] = 1;
  const inflight = new Map((o.inflight ?? []).map((c) => [c, Promise.resolve()]));
  const pick = hydrationOrder({
    hot: o.hot ?? [],
    local,
    inflight,
    chunks: STORED.length,
    storedIn: (c) => STORED[c] ?? 0,
    runBlocks: o.runBlocks ?? 1000,
    runChunks: 1000,
  });
  const all: number[][] = [];
  for (let run = pick(); run; run = pick()) {
    all.push(run);
    for (const c of run) local[c] = 1; // copied
  }
  return all;
}

describe('hydrationOrder', () => {
  it('copies a sparse volume in one run that steps over its holes', () => {
    expect(picker({})).toEqual([[0, 1, 5, 6, 7, 10, 11]]);
  });

  it('ends a run once it holds runBlocks stored blocks', () => {
    expect(picker({ runBlocks: 48 })).toEqual([[0, 1, 5], [6, 7, 10], [11]]);
  });

  it('copies the hot chunks first, one at a time, skipping those already local', () => {
    // the hot chunk 6, local now, splits the run that would have spanned it
    expect(picker({ hot: [6, 6, 11] })).toEqual([[6], [11], [0, 1, 5], [7, 10]]);
  });

  it('never spans a chunk that is being fetched or local with data (its blocks would come twice)', () => {
    expect(picker({ inflight: [5] })).toEqual([
      [0, 1],
      [6, 7, 10, 11],
    ]);
    expect(picker({ local: [6] })).toEqual([
      [0, 1, 5],
      [7, 10, 11],
    ]);
  });
});
