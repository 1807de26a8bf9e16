import { describe, expect, it } from 'vitest';
import { parseDuration, parseSize } from '../../../core/units.js';

describe('parseDuration', () => {
  it('reads one unit, several largest first, and a bare number as seconds', () => {
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('30m')).toBe(1_800_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('1d 2h')).toBe(93_600_000);
    expect(parseDuration('1m30s250ms')).toBe(90_250);
    expect(parseDuration(' 5 s ')).toBe(5000);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('10')).toBe(10_000);
    expect(parseDuration(2)).toBe(2000);
    expect(parseDuration('0s')).toBe(0);
  });

  it('refuses bad units, repeated or out-of-order parts, negatives and blanks', () => {
    for (const bad of ['5x', '5 sec', '1y', '30m1h', '1m1m', '-5s', '', ' ', 's', '1h30', '1,5s'])
      expect(parseDuration(bad), bad).toBeUndefined();
    expect(parseDuration(-1)).toBeUndefined();
    expect(parseDuration(Number.NaN)).toBeUndefined();
  });
});

describe('parseSize', () => {
  it('reads binary units and plain byte counts, and refuses the rest', () => {
    expect(parseSize('64KiB')).toBe(65_536);
    expect(parseSize('4m')).toBe(4 * 1024 ** 2);
    expect(parseSize(512)).toBe(512);
    expect(parseSize('4 parsecs')).toBeUndefined();
  });
});
