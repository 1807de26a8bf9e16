// Picks the zstd level that keeps the link full: compression fast enough to feed it, no faster.
import type { BlockCompressor } from '../crypto/block-compression.js';

export interface CompressionLevelOptions {
  /** Lowest and highest level it moves between (zstd: 1 is the fastest that still squeezes well). */
  min?: number;
  max?: number;
  /** Plain bytes compressed between two decisions. */
  windowBytes?: number;
  /** A bandwidth cap in force now (bytes/s), which the link then cannot beat. */
  capRate?: () => number | undefined;
  /** Monotonic milliseconds. */
  now?: () => number;
}

export interface LevelDecision {
  level: number;
  /** Plain bytes per second of compression time at the level just measured. */
  compressRate: number;
  /** Wire bytes per second while a batch was on the wire (capped by the bandwidth cap). */
  linkRate: number;
  ratio: number;
}

/**
 * zstd's speed at each level relative to level 1, per 64 KiB block of binaries and text (this
 * machine, 2026-12-07: 260, 254, 169, 109 MB/s at levels 1-4, 44 at 6, 22 at 9). Levels past 6
 * gain little ratio (2.45 at 6, 2.47 at 9) for a third of the speed.
 */
const RELATIVE_SPEED = [1, 1, 0.95, 0.65, 0.45, 0.35, 0.2, 0.15, 0.11, 0.085];

/**
 * Adapts a zstd compressor's level to the link. The agent's throughput is the
 * smaller of its compression rate (plain bytes per second of compression) and
 * the link rate times the compression ratio. Over each window it measures both;
 * when compressing takes less than half the time the link needs to carry the
 * result, it climbs a level (a better ratio, the link still the limit); when
 * compression cannot keep up with the link, it steps down. Fast levels on
 * loopback, higher ones on a slow link.
 */
export class CompressionLevel {
  private readonly min: number;
  private readonly max: number;
  private readonly windowBytes: number;
  private readonly now: () => number;
  private inFlight = 0;
  private busySince = 0;
  private busyMs = 0;
  private wireBytes = 0;
  private plainSeen = 0;
  last: LevelDecision | undefined;

  constructor(
    private readonly compressor: BlockCompressor,
    private readonly o: CompressionLevelOptions = {},
  ) {
    this.min = o.min ?? 1;
    this.max = o.max ?? 9;
    if (this.min < 1 || this.max > 19 || this.min > this.max)
      throw new RangeError(`levels ${this.min}-${this.max}: expected 1 <= min <= max <= 19`);
    this.windowBytes = o.windowBytes ?? 4 * 1024 * 1024;
    this.now = o.now ?? (() => performance.now());
    compressor.level = Math.min(this.max, Math.max(this.min, compressor.level || 3));
  }

  get level(): number {
    return this.compressor.level;
  }

  /** A batch went on the wire: the link counts as busy while one is. */
  sendStarted(): void {
    if (this.inFlight++ === 0) this.busySince = this.now();
  }

  /** A batch of `bytes` was acknowledged (or failed: then 0). */
  sendEnded(bytes: number): void {
    this.wireBytes += bytes;
    if (--this.inFlight === 0) this.busyMs += this.now() - this.busySince;
  }

  /** Called after each block is sealed: decides once a window's worth was compressed. */
  blockSealed(plainBytes: number): LevelDecision | undefined {
    this.plainSeen += plainBytes;
    if (this.plainSeen < this.windowBytes) return undefined;
    const busyMs = this.busyMs + (this.inFlight > 0 ? this.now() - this.busySince : 0);
    // No batch has come back yet: nothing known about the link; keep counting.
    if (busyMs <= 0 || this.wireBytes <= 0) return undefined;
    const s = this.compressor.takeStats();
    this.plainSeen = 0;
    this.busyMs = 0;
    if (this.inFlight > 0) this.busySince = this.now();
    const measured = (this.wireBytes * 1000) / busyMs;
    this.wireBytes = 0;
    const cap = this.o.capRate?.();
    const linkRate = cap !== undefined ? Math.min(cap, measured) : measured;
    if (s.seconds <= 0 || s.packedBytes <= 0) return undefined;
    const compressRate = s.plainBytes / s.seconds;
    const ratio = s.plainBytes / s.packedBytes;
    // Plain bytes per second the link can take at this ratio.
    const need = linkRate * ratio;
    const speedAt = (l: number) => RELATIVE_SPEED[Math.min(l, RELATIVE_SPEED.length - 1)] ?? 0.05;
    const atLevel1 = compressRate / speedAt(this.compressor.level);
    let level = this.min;
    for (let l = this.max; l > this.min; l--) {
      if (atLevel1 * speedAt(l) >= need * 1.25) {
        level = l;
        break;
      }
    }
    this.compressor.level = level;
    this.last = { level, compressRate, linkRate, ratio };
    return this.last;
  }
}
