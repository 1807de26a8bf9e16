/** Durations and times as the status page writes them. */

/** 1234 ms → "1.2 s"; 95 s → "1m 35s". */
export function formatSeconds(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '-';
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  if (seconds < 3600) {
    const rest = Math.round(seconds % 60);
    return `${Math.floor(seconds / 60)}m${rest ? ` ${rest}s` : ''}`;
  }
  return `${Math.floor(seconds / 3600)}h ${Math.round((seconds % 3600) / 60)}m`;
}

/** An instant as `2026-12-07 05:01:02 UTC`; `-` when it is not one. */
export function formatTime(ms: number | string): string {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? '-' : `${d.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}
