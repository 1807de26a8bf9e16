import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, truncateSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  findZeroRanges,
  majorMinor,
  parseFsmapFree,
  parseSeekHoles,
} from '../../../../replicator/capture/zero-ranges.js';
import { missingFeature } from '../../../helpers/skip.js';

const KiB = 1024;

function xfsIoMissing(): string | undefined {
  try {
    execFileSync('xfs_io', ['-V'], { stdio: 'ignore' });
    return undefined;
  } catch {
    // not installed: the walk is tested where it is
    return 'xfs_io is not installed (apt-get install xfsprogs)';
  }
}

describe('parseSeekHoles', () => {
  it('turns HOLE/DATA transitions into hole ranges, the last one running to the end', () => {
    const out = 'Whence\tResult\nHOLE\t0\nDATA\t65536\nHOLE\t131072\nDATA\t262144\nHOLE\t327680\n';
    expect(parseSeekHoles(out, 1024 * KiB)).toEqual([
      [0, 65536],
      [131072, 262144],
      [327680, 1024 * KiB],
    ]);
  });
  it('finds no hole in a file that is all data, nor in an empty one', () => {
    expect(parseSeekHoles('Whence\tResult\nDATA\t0\nHOLE\t4096\n', 4096)).toEqual([]);
    expect(parseSeekHoles('Whence\tResult\nDATA\tEOF\n', 0)).toEqual([]);
  });
});

describe('parseFsmapFree', () => {
  const rdev = 7 * 256 + 3; // loop3
  it('keeps only free space of the device, merged, in bytes with the end exclusive', () => {
    const out = [
      'EXT,MAJOR,MINOR,PSTART,PEND,OWNER,OSTART,OEND,LENGTH',
      '0,7,3,0,1,special_0:2,,,2',
      '1,7,3,8,15,special_0:1,,,8',
      '2,7,3,16,23,special_0:1,,,8',
      '3,7,3,24,31,12,0,7,8',
      '4,7,4,32,63,special_0:1,,,32',
      '5,7,3,64,127,special_0:1,,,64',
      'garbage line',
    ].join('\n');
    expect(parseFsmapFree(out, rdev)).toEqual([
      [8 * 512, 24 * 512],
      [64 * 512, 128 * 512],
    ]);
  });
  it('reads the major and minor of large device numbers', () => {
    expect(majorMinor(259 * 256 + 1)).toEqual({ major: 259, minor: 1 });
    expect(majorMinor((300 & 0xff) + 8 * 256 + ((300 & 0xfff00) << 12))).toEqual({
      major: 8,
      minor: 300,
    });
  });
});

describe.skipIf(missingFeature(xfsIoMissing(), 'findZeroRanges on a sparse file'))(
  'findZeroRanges on a sparse file',
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'lifeboat-zero-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('finds the holes of an image file, with data where it was written', async () => {
      const path = join(dir, 'sparse.img');
      const size = 64 * 1024 * KiB;
      const fd = openSync(path, 'w');
      writeSync(fd, Buffer.alloc(1024 * KiB, 7), 0, 1024 * KiB, 8 * 1024 * KiB);
      closeSync(fd);
      truncateSync(path, size);
      const map = await findZeroRanges({ path, isBlockDevice: false, rdev: 0 }, size);
      expect(map.source).toBe('holes');
      // The data is never inside a hole, and the holes cover most of the file.
      for (const [a, b] of map.ranges)
        expect(b <= 8 * 1024 * KiB || a >= 9 * 1024 * KiB).toBe(true);
      expect(map.zeroBytes).toBeGreaterThanOrEqual(size - 2 * 1024 * KiB);
    });

    it('says why when the walk cannot be made, and maps nothing', async () => {
      const map = await findZeroRanges(
        { path: join(dir, 'nope.img'), isBlockDevice: false, rdev: 0 },
        1024,
      );
      expect(map.source).toBe('none');
      expect(map.ranges).toEqual([]);
      expect(map.reason).toMatch(/xfs_io failed/);
      const missing = await findZeroRanges(
        { path: join(dir, 'sparse.img'), isBlockDevice: false, rdev: 0 },
        1024,
        'xfs_io-not-here',
      );
      expect(missing.reason).toMatch(/not installed \(install xfsprogs\)/);
    });
  },
);
