// A bandwidth cap as written in dr.yaml, on `dr agent --max-rate` and in chat: parsed once, here.

const BYTE_UNITS: Record<string, number> = {
  b: 1,
  kib: 1024,
  kb: 1024,
  k: 1024,
  mib: 1024 ** 2,
  mb: 1024 ** 2,
  m: 1024 ** 2,
  gib: 1024 ** 3,
  gb: 1024 ** 3,
  g: 1024 ** 3,
};
const BIT_UNITS: Record<string, number> = {
  bit: 1 / 8,
  kbit: 1000 / 8,
  mbit: 1e6 / 8,
  gbit: 1e9 / 8,
};
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;

/** The smallest cap: below it a 64 KiB block would take more than a second. */
export const MIN_RATE = 64 * 1024;

export interface RateWindow {
  /** Bytes per second; undefined: no cap in this window. */
  rate: number | undefined;
  /** Days of the week it holds on (0 = Sunday); undefined: every day. */
  days?: number[];
  /** Minutes after midnight, [from, to); from > to crosses midnight. Undefined: all day. */
  from?: number;
  to?: number;
}

/** Windows tried in order, the first that holds wins; none: no cap. */
export interface RateSchedule {
  windows: RateWindow[];
  /** As written, for status and audit. */
  text: string;
}

export const RATE_HINT =
  'write a rate like 20MiB/s or 100Mbit/s, optionally by time of day: `10MiB/s mon-fri 08:00-18:00, 50MiB/s` (first match wins; `unlimited` for no cap)';

/** Bytes per second from `20MiB/s`, `100Mbit/s`, `1.5GiB/s`; undefined when it is not a rate above zero. */
export function parseRate(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\/s\s*$/.exec(text);
  if (!m) return undefined;
  const unit = (m[2] ?? '').toLowerCase();
  const factor = BYTE_UNITS[unit] ?? BIT_UNITS[unit];
  if (factor === undefined) return undefined;
  const v = Math.round(Number(m[1]) * factor);
  return Number.isSafeInteger(v) && v > 0 ? v : undefined;
}

function parseClock(t: string): number | undefined {
  const m = /^(\d{1,2}):(\d{2})$/.exec(t);
  if (!m) return undefined;
  const h = Number(m[1]);
  const min = Number(m[2]);
  if (h > 24 || min > 59 || (h === 24 && min > 0)) return undefined;
  return h * 60 + min;
}

function parseDays(t: string): number[] | undefined {
  const [a, b, extra] = t.toLowerCase().split('-');
  if (extra !== undefined) return undefined;
  const from = DAYS.indexOf(a as (typeof DAYS)[number]);
  const to = b === undefined ? from : DAYS.indexOf(b as (typeof DAYS)[number]);
  if (from < 0 || to < 0) return undefined;
  const out: number[] = [];
  for (let d = from; ; d = (d + 1) % 7) {
    out.push(d);
    if (d === to) break;
  }
  return out;
}

/**
 * Parses a cap: `20MiB/s`, or windows `RATE [DAYS] [HH:MM-HH:MM]` separated by
 * commas, e.g. `10MiB/s mon-fri 08:00-18:00, 50MiB/s`. Returns the schedule, or
 * a one-line reason naming the part that is wrong.
 */
export function parseRateSchedule(text: string): { schedule: RateSchedule } | { error: string } {
  const entries = text.split(',').map((e) => e.trim());
  if (entries.some((e) => e === '')) return { error: `${JSON.stringify(text)} has an empty part` };
  const windows: RateWindow[] = [];
  for (const [i, entry] of entries.entries()) {
    const [rateText, ...rest] = entry.split(/\s+/).filter(Boolean);
    if (!rateText) return { error: `${JSON.stringify(text)} has an empty part` };
    let rate: number | undefined;
    if (!/^(unlimited|none|off)$/i.test(rateText)) {
      rate = parseRate(rateText);
      if (rate === undefined) {
        return {
          error: /^0+(\.0+)?([a-z]+\/s)?$/i.test(rateText)
            ? `${rateText} is not a cap above zero`
            : `${rateText} is not a rate`,
        };
      }
      if (rate < MIN_RATE) return { error: `${rateText} is below the smallest cap, 64KiB/s` };
    }
    const w: RateWindow = { rate };
    for (const part of rest) {
      if (part.includes(':')) {
        if (w.from !== undefined) return { error: `${JSON.stringify(entry)} has two time windows` };
        const [a, b, extra] = part.split('-');
        const from = a === undefined ? undefined : parseClock(a);
        const to = b === undefined ? undefined : parseClock(b);
        if (extra !== undefined || from === undefined || to === undefined || from === to) {
          return { error: `${part} is not a time window like 08:00-18:00` };
        }
        w.from = from;
        w.to = to;
      } else {
        if (w.days) return { error: `${JSON.stringify(entry)} names its days twice` };
        const days = parseDays(part);
        if (!days) return { error: `${part} is not a day or days like mon-fri` };
        w.days = days;
      }
    }
    const always = w.days === undefined && w.from === undefined;
    if (always && i < entries.length - 1) {
      return {
        error: `${JSON.stringify(entry)} holds at all times, so what follows it never would`,
      };
    }
    windows.push(w);
  }
  return { schedule: { windows, text: text.trim() } };
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** Weekday (0 = Sunday) and minutes after midnight of `ms` in time zone `tz`. */
function zonedClock(ms: number, tz: string): { day: number; minute: number } {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      hour: 'numeric',
      minute: 'numeric',
      weekday: 'short',
    });
    formatters.set(tz, f);
  }
  const parts = f.formatToParts(ms);
  const get = (t: string) => parts.find((x) => x.type === t)?.value ?? '';
  const day = DAYS.indexOf(get('weekday').slice(0, 3).toLowerCase() as (typeof DAYS)[number]);
  return { day: Math.max(0, day), minute: Number(get('hour')) * 60 + Number(get('minute')) };
}

/** The cap (bytes/s) in force at `ms` in time zone `tz`; undefined: none. */
export function rateAt(schedule: RateSchedule, ms: number, tz: string): number | undefined {
  const { day, minute } = zonedClock(ms, tz);
  for (const w of schedule.windows) {
    if (w.from !== undefined && w.to !== undefined) {
      const inside =
        w.from < w.to ? minute >= w.from && minute < w.to : minute >= w.from || minute < w.to;
      if (!inside) continue;
      // A window across midnight belongs to the day it started on.
      const startDay = w.from > w.to && minute < w.to ? (day + 6) % 7 : day;
      if (w.days && !w.days.includes(startDay)) continue;
    } else if (w.days && !w.days.includes(day)) continue;
    return w.rate;
  }
  return undefined;
}

/** True when `tz` is an IANA time zone this runtime knows. */
export function knownTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false; // RangeError: not a time zone
  }
}
