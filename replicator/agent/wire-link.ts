// What the agent does to the link: the compressor, the level it adapts, and the bandwidth cap.
import {
  type CompressionSetting,
  formatCompressionSetting,
} from '../../core/compression-setting.js';
import { parseRateSchedule, type RateSchedule } from '../../core/rate-schedule.js';
import { BlockCompressor } from '../crypto/block-compression.js';
import type { LinkState, ThrottleState } from '../transport/wire-types.js';
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
  /** The cap from dr.yaml or --max-rate, which holds while chat has set none. */
  private readonly configured: RateSchedule | undefined;
  /** The cap set from chat now in force, as written. */
  private fromChat: string | null = null;

  constructor(o: WireLinkOptions = {}) {
    this.setting = o.compression ?? { codec: 'zstd', level: 'auto' };
    const s = this.setting;
    this.compressor = new BlockCompressor(
      s.codec === 'lz4' ? s : { codec: 'zstd', level: s.level === 'auto' ? 3 : s.level },
    );
    this.configured = o.maxRate;
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
      ...(this.fromChat !== null ? { capFrom: 'chat' as const } : {}),
      heldFraction: Math.round(held * 100) / 100,
    };
  }

  /**
   * Applies the cap set from chat (from a heartbeat answer): a rate or schedule replaces the
   * configured one, null brings it back. A text that does not parse changes nothing (the
   * gateway checked it; an older agent may not know a newer form). Returns whether it changed.
   */
  applyThrottle(t: ThrottleState | undefined): boolean {
    if (!t || t.maxRate === this.fromChat) return false;
    if (t.maxRate === null) {
      this.fromChat = null;
      this.limiter.setSchedule(this.configured);
      return true;
    }
    const r = parseRateSchedule(t.maxRate);
    if ('error' in r) return false;
    this.fromChat = t.maxRate;
    this.limiter.setSchedule(r.schedule);
    return true;
  }

  describe(): string {
    return formatCompressionSetting(this.setting);
  }
}
