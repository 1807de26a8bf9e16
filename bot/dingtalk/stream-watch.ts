// Watches the DingTalk stream: logs each drop and reconnect, tells the admins when it stays down.
import type { Redis } from 'ioredis';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { Notice } from '../../engine/contract.js';
import { publishNotice } from '../notice-reader.js';

export interface StreamWatchOptions {
  /** Whether the stream is connected now. */
  connected: () => boolean;
  /** Where the `surface.down` notice is published. */
  redis: Redis;
  prefix?: string;
  /** The admin channels from dr.yaml; none, and nobody is told. */
  adminTargets: string[];
  /** How long the stream may stay down before the admins are told. */
  downNoticeAfterMs: number;
  now: () => number;
  log: Logger;
}

/** Looks twice a second; tells the admins once when the stream stays down, and once when it is back. */
export class StreamWatch {
  private timer: NodeJS.Timeout | undefined;
  private downSince: number | undefined;
  private toldDown = false;
  private wasConnected = false;

  constructor(private readonly o: StreamWatchOptions) {}

  /** Starts watching, counting the stream down from now (it is connecting). */
  start(): void {
    this.downSince = this.o.now();
    this.timer = setInterval(() => void this.check(), 500);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private async check(): Promise<void> {
    const now = this.o.now();
    const up = this.o.connected();
    try {
      if (up) {
        if (!this.wasConnected) this.o.log.info('DingTalk stream connected');
        if (this.toldDown && this.downSince !== undefined) {
          await this.tellAdmins(
            'info',
            `DingTalk stream is back after ${Math.round((now - this.downSince) / 1000)} s.`,
          );
        }
        this.wasConnected = true;
        this.downSince = undefined;
        this.toldDown = false;
        return;
      }
      if (this.wasConnected) {
        this.o.log.warn('DingTalk stream dropped; reconnecting');
        this.wasConnected = false;
        this.downSince = now;
      }
      this.downSince ??= now;
      if (!this.toldDown && now - this.downSince >= this.o.downNoticeAfterMs) {
        this.toldDown = true;
        this.o.log.error({ downMs: now - this.downSince }, 'DingTalk stream stays down');
        await this.tellAdmins(
          'critical',
          `DingTalk stream is down for ${Math.round((now - this.downSince) / 1000)} s: commands and cards in DingTalk go unanswered until it is back.`,
        );
      }
    } catch (err) {
      this.o.log.error(
        { err: errorMessage(err) },
        'telling the admins about the DingTalk stream failed',
      );
    }
  }

  private async tellAdmins(severity: Notice['severity'], summary: string): Promise<void> {
    if (this.o.adminTargets.length === 0) return;
    await publishNotice(
      this.o.redis,
      {
        kind: 'surface.down',
        key: 'surface:dingtalk',
        targets: this.o.adminTargets,
        severity,
        summary,
        time: this.o.now(),
      },
      this.o.prefix,
    );
  }
}
