import { describe, expect, it } from 'vitest';
import { isDrError } from '../../../../core/errors.js';
import { diskSizeGiB, essdLevel } from '../../../../replicator/providers/alicloud-disk-size.js';

const GiB = 1024 ** 3;

describe('diskSizeGiB', () => {
  it('raises small volumes to the minimum of the category and ESSD level', () => {
    expect(diskSizeGiB(5 * 1024 * 1024, 'cloud_essd', 'PL1')).toBe(20);
    expect(diskSizeGiB(5 * 1024 * 1024, 'cloud_essd', 'PL0')).toBe(1);
    expect(diskSizeGiB(GiB, 'cloud_essd', 'PL2')).toBe(461);
    expect(diskSizeGiB(GiB, 'cloud_essd', 'PL3')).toBe(1261);
    expect(diskSizeGiB(GiB, 'cloud_essd_entry', '')).toBe(10);
    expect(diskSizeGiB(30 * GiB + 1, 'cloud_essd', 'PL1')).toBe(31);
  });

  it('defaults cloud_essd to PL1 and gives other categories no level', () => {
    expect(essdLevel('cloud_essd', undefined)).toBe('PL1');
    expect(essdLevel('cloud_auto', 'PL2')).toBe('');
  });

  it('refuses a volume bigger than the category holds, and an unknown category', () => {
    let err: unknown;
    try {
      diskSizeGiB(40_000 * GiB, 'cloud_ssd', '');
    } catch (e) {
      err = e;
    }
    expect(isDrError(err, 'bad_request')).toBe(true);
    expect(String(err)).toContain('does not fit an ECS cloud_ssd disk (at most 32768 GiB)');
    expect(() => diskSizeGiB(GiB, 'cloud_fast', '')).toThrow(
      /unknown ECS disk category cloud_fast/,
    );
  });
});
