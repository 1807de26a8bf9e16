// The cap holds the average rate, follows its schedule, and says how long it held batches back.
import { describe, expect, it } from 'vitest';
import { parseRateSchedule, type RateSchedule } from '../../../../core/rate-schedule.js';
import { RateLimiter } from '../../../../replicator/agent/rate-limiter.js';

const MiB = 1024 * 1024;

function schedule(text: string): RateSchedule {
  const r = parseRateSchedule(text);
  if ('error' in r) throw new Error(r.error);
  return r.schedule;
}

/** A limiter on a virtual clock: its sleeps advance the clock instead of waiting. */
function virtual(text: string | undefined, wall = Date.parse('2026-12-07T12:00:00Z')) {
  const t = { mono: 0, wall };
  const limiter = new RateLimiter({
    schedule: text ? schedule(text) : undefined,
    timeZone: 'UTC',
    now: () => t.mono,
    clock: () => t.wall + t.mono,
    sleep: async (ms) => {
      t.mono += ms;
    },
  });
  return { t, limiter };
}

describe('rate limiter', () => {
  it('lets 40 MiB through a 10MiB/s cap in about 4 s of (virtual) time', async () => {
    const { t, limiter } = virtual('10MiB/s');
    for (let i = 0; i < 10; i++) await limiter.take(4 * MiB);
    // The bucket starts with half a second; the last batch goes once the debt before it is paid.
    expect(t.mono).toBeGreaterThanOrEqual(3000);
    expect(t.mono).toBeLessThanOrEqual(4000);
    const s = limiter.takeState();
    expect(s.rate).toBe(10 * MiB);
    expect(s.heldMs).toBe(t.mono);
  });

  it('never waits without a cap, or in a window without one', async () => {
    const { t, limiter } = virtual(undefined);
    for (let i = 0; i < 10; i++) await limiter.take(64 * MiB);
    expect(t.mono).toBe(0);
    // 12:00 UTC is outside 22:00-06:00.
    const night = virtual('1MiB/s 22:00-06:00');
    for (let i = 0; i < 10; i++) await night.limiter.take(64 * MiB);
    expect(night.t.mono).toBe(0);
  });

  it('applies a new cap at the next wait', async () => {
    const { t, limiter } = virtual('1MiB/s');
    await limiter.take(4 * MiB);
    limiter.setSchedule(schedule('64MiB/s'));
    const before = t.mono;
    await limiter.take(4 * MiB);
    // The 3.5 MiB of debt at 64MiB/s: well under a second.
    expect(t.mono - before).toBeLessThan(100);
    limiter.setSchedule(undefined);
    expect(limiter.rate()).toBeUndefined();
  });

  it('stops waiting when the agent stops', async () => {
    const limiter = new RateLimiter({ schedule: schedule('64KiB/s') });
    await limiter.take(4 * MiB);
    const stop = new AbortController();
    const waiting = limiter.take(4 * MiB, stop.signal);
    stop.abort(new Error('agent stopping'));
    await expect(waiting).rejects.toThrow('agent stopping');
  });
});
