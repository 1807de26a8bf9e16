// Bandwidth caps as written: rates, windows by time of day in a time zone, and every bad form.
import { describe, expect, it } from 'vitest';
import { parseRate, parseRateSchedule, rateAt } from '../../../core/rate-schedule.js';

const MiB = 1024 * 1024;

function schedule(text: string) {
  const r = parseRateSchedule(text);
  if ('error' in r) throw new Error(r.error);
  return r.schedule;
}

describe('rate schedule', () => {
  it('reads byte and bit rates', () => {
    expect(parseRate('20MiB/s')).toBe(20 * MiB);
    expect(parseRate('100Mbit/s')).toBe(12_500_000);
    expect(parseRate('1.5GiB/s')).toBe(1.5 * 1024 * MiB);
    expect(parseRate('fast')).toBeUndefined();
    expect(parseRate('20MiB')).toBeUndefined();
  });

  it.each([
    ['0', '0 is not a cap above zero'],
    ['0MiB/s', '0MiB/s is not a cap above zero'],
    ['fast', 'fast is not a rate'],
    ['20MiB', '20MiB is not a rate'],
    ['1KiB/s', '1KiB/s is below the smallest cap, 64KiB/s'],
    ['10MiB/s 8-18', '8-18 is not a day or days like mon-fri'],
    ['10MiB/s 08:00-25:00', '08:00-25:00 is not a time window like 08:00-18:00'],
    ['10MiB/s 08:00-08:00', '08:00-08:00 is not a time window like 08:00-18:00'],
    ['10MiB/s mon-fry 08:00-18:00', 'mon-fry is not a day or days like mon-fri'],
    ['10MiB/s 08:00-12:00 13:00-18:00', '"10MiB/s 08:00-12:00 13:00-18:00" has two time windows'],
    [
      '50MiB/s, 10MiB/s 08:00-18:00',
      '"50MiB/s" holds at all times, so what follows it never would',
    ],
    ['10MiB/s,', '"10MiB/s," has an empty part'],
  ])('refuses %j with one line saying why', (text, error) => {
    expect(parseRateSchedule(text)).toEqual({ error });
  });

  it('picks the first window that holds, in the app time zone', () => {
    const s = schedule('10MiB/s mon-fri 08:00-18:00, 50MiB/s');
    // Monday 2026-12-07 09:00 in Shanghai is 01:00 UTC.
    expect(rateAt(s, Date.parse('2026-12-07T01:00:00Z'), 'Asia/Shanghai')).toBe(10 * MiB);
    // The same instant in Berlin is 02:00: outside business hours.
    expect(rateAt(s, Date.parse('2026-12-07T01:00:00Z'), 'Europe/Berlin')).toBe(50 * MiB);
    // Saturday 10:00 in Shanghai: not a weekday.
    expect(rateAt(s, Date.parse('2026-12-12T02:00:00Z'), 'Asia/Shanghai')).toBe(50 * MiB);
  });

  it('has no cap outside its windows, and a window may cross midnight', () => {
    const s = schedule('5MiB/s 22:00-06:00');
    expect(rateAt(s, Date.parse('2026-12-07T23:30:00Z'), 'UTC')).toBe(5 * MiB);
    expect(rateAt(s, Date.parse('2026-12-07T05:59:00Z'), 'UTC')).toBe(5 * MiB);
    expect(rateAt(s, Date.parse('2026-12-07T12:00:00Z'), 'UTC')).toBeUndefined();
    const lifted = schedule('unlimited sat-sun, 20MiB/s');
    expect(rateAt(lifted, Date.parse('2026-12-12T12:00:00Z'), 'UTC')).toBeUndefined();
    expect(rateAt(lifted, Date.parse('2026-12-09T12:00:00Z'), 'UTC')).toBe(20 * MiB);
  });
});
