// How a point read is cut into ranges, the machine's default, and counts from the command line.
import { describe, expect, it } from 'vitest';
import {
  defaultParallelism,
  parseCount,
  rangesOf,
} from '../../../../replicator/recovery/read-parallelism.js';

describe('rangesOf', () => {
  it('covers every block once, two ranges per lane, the last one open-ended', () => {
    const ranges = rangesOf(1000, 4);
    expect(ranges).toHaveLength(8);
    expect(ranges[0]).toEqual({ from: 0, to: 125 });
    expect(ranges.at(-1)).toEqual({ from: 875, to: 2 ** 32 });
    for (let i = 1; i < ranges.length; i++) {
      expect(ranges[i]?.from).toBe(ranges[i - 1]?.to);
    }
  });

  it('one lane reads the volume in one range; small volumes are not cut below 64 blocks', () => {
    expect(rangesOf(1000, 1)).toEqual([{ from: 0, to: 2 ** 32 }]);
    expect(rangesOf(100, 8)).toEqual([
      { from: 0, to: 64 },
      { from: 64, to: 2 ** 32 },
    ]);
    expect(rangesOf(0, 4)).toEqual([]);
  });
});

describe('defaultParallelism', () => {
  it('follows the core count', () => {
    expect(defaultParallelism(1)).toEqual({ ranges: 2, workers: 0 });
    expect(defaultParallelism(2)).toEqual({ ranges: 2, workers: 0 });
    expect(defaultParallelism(3)).toEqual({ ranges: 3, workers: 0 });
    expect(defaultParallelism(4)).toEqual({ ranges: 4, workers: 2 });
    expect(defaultParallelism(8)).toEqual({ ranges: 8, workers: 4 });
    expect(defaultParallelism(64)).toEqual({ ranges: 8, workers: 8 });
  });
});

describe('parseCount', () => {
  it('takes whole numbers in range and names the flag otherwise', () => {
    expect(parseCount('--parallel', '3', 1, 8)).toBe(3);
    expect(parseCount('--workers', '0', 0, 8)).toBe(0);
    for (const bad of ['0', '9', '', ' ', '2.5', '1e1', '-1', 'x', '0x2']) {
      expect(() => parseCount('--parallel', bad, 1, 8)).toThrow(
        `--parallel ${bad} is not a whole number from 1 to 8`,
      );
    }
  });
});
