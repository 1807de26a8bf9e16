/** What a round-trip chaos run reports, and how it prints. */

export interface RoundTripReport {
  seed: number;
  rounds: number;
  faults: Record<string, number>;
  /** Records acknowledged by the writer at each site before its switch, all rounds together. */
  recordsAtSource: number;
  recordsAtDr: number;
  /** Records acknowledged before a switch but missing afterwards (must be 0). */
  recordsLost: number;
  /** SQLite databases opened from a point (or the volume at the end) with integrity_check = ok. */
  sqliteChecks: number;
  /** Database rows acknowledged at each site before its switch, and those missing afterwards (0). */
  rowsAtSource: number;
  rowsAtDr: number;
  rowsLost: number;
  /** Bytes the agent resent after failbacks, against the bytes changed since each failover's point. */
  bytesResent: number;
  bytesChanged: number;
  /** From each failback's end to the agent's first consistent point after it. */
  backMs: number[];
  /** Operations run again after a fault made one fail. */
  retries: number;
  failures: string[];
  ms: number;
}

/** The round trip's figures, for docs/chaos.md. */
export function formatRoundTrip(r: RoundTripReport): string {
  const sorted = [...r.backMs].sort((a, b) => a - b);
  const p50 = sorted[Math.floor(sorted.length / 2)] ?? 0;
  return [
    `round trips: ${r.rounds} (seed ${r.seed}), ${r.failures.length} failure(s), ${(r.ms / 60_000).toFixed(1)} min`,
    `faults: ${Object.entries(r.faults)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
    `records acknowledged: ${r.recordsAtSource} at the source, ${r.recordsAtDr} at the DR site; lost ${r.recordsLost}`,
    `database rows acknowledged: ${r.rowsAtSource} at the source, ${r.rowsAtDr} at the DR site; lost ${r.rowsLost}; integrity_check ok ${r.sqliteChecks} times`,
    `resync after failback: ${r.bytesResent} bytes resent for ${r.bytesChanged} changed`,
    `back to continuous after failback: p50 ${(p50 / 1000).toFixed(1)} s, max ${((sorted.at(-1) ?? 0) / 1000).toFixed(1)} s`,
    `operations run again after a fault: ${r.retries}`,
    ...r.failures.map((f) => `FAIL ${f}`),
    '',
  ].join('\n');
}
