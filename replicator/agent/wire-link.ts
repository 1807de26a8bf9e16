// What the agent does to the link: the compressor, the level it adapts, and the bandwidth cap.
import {
  type CompressionSetting,
  formatCompressionSetting,
} from '../../core/compression-setting.js';
import type { RateSchedule } from '../../core/rate-schedule.js';
import { BlockCompressor } from '../crypto/block-compression.js';
import type { LinkState } from '../transport/wire-types.js';
import { CompressionLevel } from './compression-level.js';
import { RateLimiter, type RateLimiterOptions } from './rate-limiter.js';

export interface WireLinkOptions {
  /** Default: zstd with the level adapted to the link. */
  compression?: CompressionSetting;
  /** The bandwidth cap; undefined: none. */
  maxRate?: RateSchedule | undefined;
  /** The app's time zone, for a cap by time of day. */
  timeZone?: string;
  /** Clocks and sleep for the cap (tests). */
  limiter?: Omit<RateLimiterOptions, 'schedule' | 'timeZone'>;
}

/** The share of a heartbeat period batches spent waiting for the cap past which status says the cap holds the RPO back. */
export const CAP_HOLDS_FRACTION = 0.25;

/**
 * One agent's link settings, shared by every cycle so the level it learnt and
 * the cap's bucket carry over; the shipper seals with `compressor`, reports its
 * sends to `level` and asks `limiter` before each batch.
 */
export class WireLink {
  readonly compressor: BlockCompressor;
  readonly level: CompressionLevel | undefined;
  readonly limiter: RateLimiter;
  readonly setting: CompressionSetting;
  private stateSince = performance.now();

  constructor(o: WireLinkOptions = {}) {
    this.setting = o.compression ?? { codec: 'zstd', level: 'auto' };
    const s = this.setting;
    this.compressor = new BlockCompressor(
      s.codec === 'lz4' ? s : { codec: 'zstd', level: s.level === 'auto' ? 3 : s.level },
    );
    this.limiter = new RateLimiter({
      ...o.limiter,
      schedule: o.maxRate,
      ...(o.timeZone ? { timeZone: o.timeZone } : {}),
    });
    this.level =
      s.codec === 'zstd' && s.level === 'auto'
        ? new CompressionLevel(this.compressor, { capRate: () => this.limiter.rate() })
        : undefined;
  }

  /** For heartbeats: the codec and level now, the cap, and how much it held batches back since the last call. */
  state(): LinkState {
    const cap = this.limiter.takeState();
    const t = performance.now();
    const elapsed = Math.max(1, t - this.stateSince);
    this.stateSince = t;
    const held = Math.min(1, cap.heldMs / elapsed);
    const compression =
      this.setting.codec === 'lz4'
        ? 'lz4'
        : `zstd:${this.compressor.level}${this.level ? ' (adaptive)' : ''}`;
    return {
      compression,
      ...(this.level?.last ? { ratio: Math.round(this.level.last.ratio * 100) / 100 } : {}),
      ...(cap.rate !== undefined ? { capBytesPerSec: cap.rate } : {}),
      ...(cap.schedule !== undefined ? { cap: cap.schedule } : {}),
      heldFraction: Math.round(held * 100) / 100,
    };
  }

  describe(): string {
    return formatCompressionSetting(this.setting);
  }
}
