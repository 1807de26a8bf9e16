// The agent's bandwidth cap: a token bucket whose rate follows a schedule by time of day.
import { type RateSchedule, rateAt } from '../../core/rate-schedule.js';

export interface RateLimiterOptions {
  schedule?: RateSchedule | undefined;
  /** IANA zone the schedule's times are in (the app's). */
  timeZone?: string;
  /** Wall clock (ms since epoch): which window holds. */
  clock?: () => number;
  /** Monotonic ms: how many tokens came in. */
  now?: () => number;
  /** Waits `ms` (or until `signal` aborts, then throws its reason). */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** How much of the last stretch the cap held batches back. */
export interface CapState {
  /** The cap in force now (bytes/s); undefined: none. */
  rate: number | undefined;
  schedule: string | undefined;
  /** Milliseconds batches waited for the cap since the last `takeState`. */
  heldMs: number;
}

const defaultSleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    signal?.throwIfAborted();
    const t = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener('abort', abort);
      resolve();
    }
    function abort() {
      clearTimeout(t);
      reject(signal?.reason);
    }
    signal?.addEventListener('abort', abort, { once: true });
  });

/**
 * Lets batches onto the wire no faster than the cap in force. A batch may
 * borrow against the bucket (it goes when the bucket is not in debt), so the
 * average holds for batches larger than the bucket; waiters go in order. The
 * schedule is read again at every wait, so a new cap or a new window applies
 * within a second.
 */
export class RateLimiter {
  private schedule: RateSchedule | undefined;
  private readonly tz: string;
  private readonly clock: () => number;
  private readonly now: () => number;
  private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  private tokens = 0;
  private last: number;
  private queue: Promise<void> = Promise.resolve();
  private heldMs = 0;

  constructor(o: RateLimiterOptions = {}) {
    this.schedule = o.schedule;
    this.tz = o.timeZone ?? Intl.DateTimeFormat().resolvedOptions().timeZone;
    this.clock = o.clock ?? Date.now;
    this.now = o.now ?? (() => performance.now());
    this.sleep = o.sleep ?? defaultSleep;
    this.last = this.now();
    this.tokens = this.burst(this.rate());
  }

  /** Replaces the schedule (from chat or a config reload); undefined lifts the cap. */
  setSchedule(schedule: RateSchedule | undefined): void {
    this.schedule = schedule;
  }

  get scheduleText(): string | undefined {
    return this.schedule?.text;
  }

  /** The cap in force now, bytes/s; undefined when none. */
  rate(): number | undefined {
    return this.schedule ? rateAt(this.schedule, this.clock(), this.tz) : undefined;
  }

  /** Half a second of the rate, so short bursts pass without a wait. */
  private burst(rate: number | undefined): number {
    return rate === undefined ? 0 : rate / 2;
  }

  /** Resolves when `bytes` may go on the wire. */
  take(bytes: number, signal?: AbortSignal): Promise<void> {
    const turn = this.queue.then(() => this.wait(bytes, signal));
    // The next waiter goes after this one, whether it was let through or aborted.
    this.queue = turn.catch(() => undefined);
    return turn;
  }

  private async wait(bytes: number, signal?: AbortSignal): Promise<void> {
    for (;;) {
      signal?.throwIfAborted();
      const rate = this.rate();
      const t = this.now();
      if (rate === undefined) {
        this.tokens = 0;
        this.last = t;
        return;
      }
      this.tokens = Math.min(this.burst(rate), this.tokens + ((t - this.last) * rate) / 1000);
      this.last = t;
      if (this.tokens >= 0) {
        this.tokens -= bytes;
        return;
      }
      // Sleep until the debt is paid, at most a second: the cap may change meanwhile.
      const ms = Math.min(1000, Math.ceil((-this.tokens * 1000) / rate));
      await this.sleep(ms, signal);
      this.heldMs += this.now() - t;
    }
  }

  /** The cap and how long it held batches back since the last call. */
  takeState(): CapState {
    const s = { rate: this.rate(), schedule: this.schedule?.text, heldMs: this.heldMs };
    this.heldMs = 0;
    return s;
  }
}
