// The agent's ten-minute window of write tallies.
import { describe, expect, it } from 'vitest';
import { WRITE_WINDOW_MS, WriteWindow } from '../../../../replicator/agent/write-window.js';

const KiB = 1024;
const sizes = [4 * KiB, 16 * KiB, 64 * KiB];
const sample = (written: number, at64: number) => ({
  writtenBytes: written,
  dirtied: [
    { blockSize: 4 * KiB, bytes: written },
    { blockSize: 16 * KiB, bytes: written * 2 },
    { blockSize: 64 * KiB, bytes: at64 },
  ],
});
const t0 = Date.parse('2026-12-07T22:00:00Z');

describe('WriteWindow', () => {
  it('sums the samples of the last ten minutes and drops older ones', () => {
    const w = new WriteWindow(64 * KiB, sizes, t0);
    w.add(sample(100, 1600), t0 + 5_000);
    w.add(sample(50, 800), t0 + 3 * 60_000);
    let total = w.total(t0 + 3 * 60_000 + 1000);
    expect(total.writtenBytes).toBe(150);
    expect(total.dirtied).toEqual([
      { blockSize: 4 * KiB, bytes: 150 },
      { blockSize: 16 * KiB, bytes: 300 },
      { blockSize: 64 * KiB, bytes: 2400 },
    ]);
    expect(total.blockSize).toBe(64 * KiB);
    // Since the start only: 3 min 1 s, not ten minutes.
    expect(total.windowSeconds).toBe(181);
    // Eleven minutes on, the first sample's minute has left the window.
    total = w.total(t0 + 11 * 60_000);
    expect(total.writtenBytes).toBe(50);
    expect(total.windowSeconds).toBeLessThanOrEqual(WRITE_WINDOW_MS / 1000);
    // A minute's bucket is reused for a later minute without the old figures.
    w.add(sample(7, 7), t0 + 13 * 60_000 + 5_000);
    expect(w.total(t0 + 13 * 60_000 + 6_000).writtenBytes).toBe(7);
  });

  it('reports zero writes as zero, with a positive window', () => {
    const w = new WriteWindow(64 * KiB, sizes, t0);
    w.add(sample(0, 0), t0);
    const total = w.total(t0);
    expect(total.writtenBytes).toBe(0);
    expect(total.windowSeconds).toBeGreaterThan(0);
  });
});
