/** Where a volume holds no data: an image file's holes, or the free space of the ext4/xfs mounted on a device. */
import { execFile } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import { errorMessage } from '../../core/errors.js';

const run = promisify(execFile);

/** Byte ranges [start, end) that read as zeros (holes) or that no file uses (free space), ascending, disjoint. */
export type ByteRanges = Array<[number, number]>;

/** What one walk found. */
export interface ZeroRanges {
  /** Empty when the walk could not be made (see `reason`): then every block is read. */
  ranges: ByteRanges;
  /** holes: SEEK_HOLE of an image file; fsmap: free space of a mounted file system; none: not used. */
  source: 'holes' | 'fsmap' | 'none';
  /** Why no map was used, when `source` is none. */
  reason?: string;
  /** Bytes covered by `ranges`. */
  zeroBytes: number;
  /** How long the walk took, in milliseconds. */
  ms: number;
}

/** The file systems whose free-space map is trusted: those whose GETFSMAP reports free space. */
const MAPPED_FS = new Set(['ext4', 'xfs']);
/** GETFSMAP's owner of free space, as `xfs_io -c 'fsmap -m'` prints it (FMR_OWN_FREE). */
const FREE_OWNER = 'special_0:1';
/** xfs_io's output for a large, fragmented map stays well under this. */
const MAX_OUTPUT = 256 * 1024 * 1024;
/** A walk that takes longer is abandoned: the scan then reads every block. */
const WALK_TIMEOUT_MS = 60_000;

/** What the walk needs of a volume (a VolumeFile satisfies it). */
export interface MappableVolume {
  path: string;
  isBlockDevice: boolean;
  rdev: number;
}

/**
 * Finds the ranges of `volume` (of `size` bytes) that need not be read: for an image file its
 * holes (they read as zeros), for a block device holding a mounted ext4 or xfs the file system's
 * free space. Anything else (an unknown or unmounted file system, a raw database device, no
 * xfs_io) gets no map, with the reason: every block is then read, as before.
 */
export async function findZeroRanges(
  volume: MappableVolume,
  size: number,
  xfsIo = 'xfs_io',
): Promise<ZeroRanges> {
  const t0 = performance.now();
  const done = (ranges: ByteRanges, source: ZeroRanges['source'], reason?: string): ZeroRanges => {
    const clipped = clip(ranges, size);
    return {
      ranges: clipped,
      source,
      ...(reason ? { reason } : {}),
      zeroBytes: clipped.reduce((n, [a, b]) => n + b - a, 0),
      ms: performance.now() - t0,
    };
  };
  try {
    if (!volume.isBlockDevice) {
      const { stdout } = await run(xfsIo, ['-r', '-c', 'seek -a -r 0', volume.path], {
        maxBuffer: MAX_OUTPUT,
        timeout: WALK_TIMEOUT_MS,
      });
      return done(parseSeekHoles(stdout, size), 'holes');
    }
    const mount = await mountOf(volume.rdev);
    if (!mount) return done([], 'none', 'no mounted file system on the device');
    if (!MAPPED_FS.has(mount.fstype))
      return done([], 'none', `${mount.fstype} on ${mount.dir} has no trusted free-space map`);
    const { stdout } = await run(xfsIo, ['-r', '-c', 'fsmap -m', mount.dir], {
      maxBuffer: MAX_OUTPUT,
      timeout: WALK_TIMEOUT_MS,
    });
    return done(parseFsmapFree(stdout, volume.rdev), 'fsmap');
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    return done(
      [],
      'none',
      code === 'ENOENT'
        ? `${xfsIo} is not installed (install xfsprogs)`
        : `${xfsIo} failed: ${errorMessage(err).split('\n')[0]}`,
    );
  }
}

/** The hole ranges in `xfs_io -c 'seek -a -r 0'` output: each line starts a run of its kind that ends where the next starts. */
export function parseSeekHoles(out: string, size: number): ByteRanges {
  const marks: Array<{ hole: boolean; at: number }> = [];
  for (const line of out.split('\n')) {
    const m = /^(HOLE|DATA)\s+(\d+)\s*$/.exec(line.trim());
    if (m) marks.push({ hole: m[1] === 'HOLE', at: Number(m[2]) });
  }
  const holes: ByteRanges = [];
  for (let i = 0; i < marks.length; i++) {
    const mark = marks[i] as { hole: boolean; at: number };
    if (!mark.hole) continue;
    const end = marks[i + 1]?.at ?? size;
    if (end > mark.at) holes.push([mark.at, end]);
  }
  return holes;
}

/** The free ranges of device `rdev` in `xfs_io -c 'fsmap -m'` output (512-byte units, inclusive ends), merged. */
export function parseFsmapFree(out: string, rdev: number): ByteRanges {
  const { major, minor } = majorMinor(rdev);
  const free: ByteRanges = [];
  for (const line of out.split('\n')) {
    const f = line.trim().split(',');
    if (f.length < 9 || f[5] !== FREE_OWNER) continue;
    if (Number(f[1]) !== major || Number(f[2]) !== minor) continue;
    const start = Number(f[3]);
    const end = Number(f[4]);
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start) continue;
    free.push([start * 512, (end + 1) * 512]);
  }
  free.sort((a, b) => a[0] - b[0]);
  const merged: ByteRanges = [];
  for (const r of free) {
    const last = merged[merged.length - 1];
    if (last && r[0] <= last[1]) last[1] = Math.max(last[1], r[1]);
    else merged.push([r[0], r[1]]);
  }
  return merged;
}

/** Linux's major and minor numbers of a device number. */
export function majorMinor(rdev: number): { major: number; minor: number } {
  return {
    major: Math.floor(rdev / 256) & 0xfff,
    minor: (rdev & 0xff) | (Math.floor(rdev / 4096) & 0xfff00),
  };
}

/** The mount of the block device `rdev` in /proc/mounts (the first, when mounted twice). */
async function mountOf(rdev: number): Promise<{ dir: string; fstype: string } | undefined> {
  const text = await readFile('/proc/mounts', 'utf8');
  for (const line of text.split('\n')) {
    const [src, dir, fstype] = line.split(' ');
    if (!src?.startsWith('/') || !dir || !fstype) continue;
    const st = await stat(unescapeMount(src)).catch(() => undefined); // a stale source: not ours
    if (st?.isBlockDevice() && st.rdev === rdev) return { dir: unescapeMount(dir), fstype };
  }
  return undefined;
}

/** /proc/mounts writes space, tab, newline and backslash as octal escapes. */
function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

function clip(ranges: ByteRanges, size: number): ByteRanges {
  const out: ByteRanges = [];
  for (const [a, b] of ranges) {
    const end = Math.min(b, size);
    if (end > a) out.push([a, end]);
  }
  return out;
}
