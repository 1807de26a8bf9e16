import type { FaultKind } from './fault-schedule.js';

/** What a chaos run measured and found. */
export interface ChaosReport {
  seed: number;
  rounds: number;
  /** ext4 on loop devices, or raw image files (the fallback). */
  volumes?: 'loop' | 'image';
  /** `s3`: the gateway's store was a bucket on Ceph RGW. */
  store?: 's3';
  /** Points listed by a gateway, never acknowledged to the agent, gone with a lost gateway machine. */
  unacknowledgedGone?: number;
  /** Kinds of fault left out, and why they could not run. */
  skipped?: FaultKind[];
  faults: Partial<Record<FaultKind, number>>;
  /** Points restored and checked record by record (of `pointsCommitted`). */
  pointsChecked: number;
  pointsCommitted: number;
  /** Resyncs by scan after a fault, by reason. */
  resyncs: Record<string, number>;
  /** Bytes in blocks that changed on the volumes between the last point before a fault and the recovery (summed). */
  bytesChanged: number;
  /** Bytes the agent reported resending in those resyncs (summed). */
  bytesResent: number;
  /** Time from the end of each fault to the first consistent point cut after it, ms. */
  returnMs: number[];
  /** Lag (now minus the newest consistent point) sampled while a fault was active, s. */
  lagWhileFaulted: number[];
  records: number[];
  failures: string[];
  ms: number;
}

export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] as number;
}

const mib = (b: number) => `${(b / 1024 / 1024).toFixed(1)} MiB`;
const sec = (ms: number) => (Number.isNaN(ms) ? '-' : `${(ms / 1000).toFixed(1)} s`);

/** The table `npm run chaos` prints. */
export function formatReport(r: ChaosReport): string {
  const rows: Array<[string, string]> = [
    ['seed', String(r.seed)],
    ['rounds', String(r.rounds)],
    [
      'volumes',
      r.volumes === 'image'
        ? 'raw image files, scan tracker, quiesce hooks'
        : 'ext4 on loop devices, trace tracker, fsfreeze',
    ],
    ...(r.store === 's3'
      ? [
          [
            'store',
            'object store: a bucket on Ceph RGW (one OSD), local log on the store file system',
          ] as [string, string],
          [
            'listed, unacknowledged points gone with a lost machine',
            String(r.unacknowledgedGone ?? 0),
          ] as [string, string],
        ]
      : []),
    ...(r.skipped?.length
      ? [
          [
            'faults left out (need a file system of their own, or --store s3)',
            r.skipped.join(', '),
          ] as [string, string],
        ]
      : []),
    ...Object.entries(r.faults)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, n]): [string, string] => [`  faults: ${k}`, String(n)]),
    ['points committed', String(r.pointsCommitted)],
    ['points checked (restored, records)', String(r.pointsChecked)],
    ...Object.entries(r.resyncs).map(([k, n]): [string, string] => [`  resyncs: ${k}`, String(n)]),
    [
      'bytes changed vs resent',
      `${mib(r.bytesChanged)} vs ${mib(r.bytesResent)}${r.bytesChanged > 0 ? ` (${(r.bytesResent / r.bytesChanged).toFixed(2)}x)` : ''}`,
    ],
    [
      'return to continuous p50 / max',
      `${sec(percentile(r.returnMs, 50))} / ${sec(r.returnMs.length ? Math.max(...r.returnMs) : Number.NaN)}`,
    ],
    ['lag p99 while faults were active', sec(percentile(r.lagWhileFaulted, 99) * 1000)],
    ['records written per volume', r.records.join(' / ') || '-'],
    ['run time', sec(r.ms)],
    ['failures', String(r.failures.length)],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  const lines = rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`);
  for (const f of r.failures) lines.push(`FAIL ${f}`);
  return `${lines.join('\n')}\n`;
}
