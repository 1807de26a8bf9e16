// `dr status`: aligned columns, short cells, sentences on note lines, rounded durations.
import { describe, expect, it } from 'vitest';
import { capNote, formatMs, statusTable } from '../../../../cli/commands/status.js';
import type { AppStatus } from '../../../../replicator/transport/wire-types.js';
import { volumeRow, writeCostOf } from '../../../helpers/app-status-row.js';

const now = Date.parse('2026-12-07T01:00:10Z');
const row = (over: Partial<AppStatus>): AppStatus => ({
  app: 'web',
  phase: 'continuous',
  agent: null,
  lastPoint: { id: 12, time: '2026-12-07T01:00:08Z', label: 'crash-consistent' },
  lastConsistentPoint: { id: 12, time: '2026-12-07T01:00:08Z', label: 'crash-consistent' },
  lagSeconds: 2.04,
  trackers: { data: { kind: 'trace' } },
  lastFreezeMs: 11.480110999998942,
  lastResync: null,
  points: 12,
  bytesShipped: 0,
  throughputBytesPerSec: 2048,
  storedBytes: 0,
  backlogBytes: 0,
  ...over,
});

describe('dr status table', () => {
  it('lines up every column, and keeps sentences out of the cells', () => {
    const long =
      '/tmp/disk.img is not a block device, and block tracing sees only block devices; attach it as a loop device with `losetup --find --show /tmp/disk.img` and protect that, or use the scan tracker';
    const lines = statusTable(
      [
        row({}),
        row({
          app: 'demo-shop-long-name',
          phase: 'stalled',
          reason: 'agent not heard for 40 s',
          trackers: { db: { kind: 'scan', reason: long } },
          lastFreezeMs: null,
        }),
      ],
      now,
    );
    const [head, web, demo, ...notes] = lines as [string, string, string, ...string[]];
    // Each column starts where its heading does.
    for (const title of [
      'PHASE',
      'TRACKER',
      'LAST POINT',
      'LAG',
      'BACKLOG',
      'THROUGHPUT',
      'FREEZE',
    ]) {
      const at = head.indexOf(title);
      expect(web[at - 1], title).toBe(' ');
      expect(web[at], title).not.toBe(' ');
      expect(demo.slice(0, web.length)[at - 1], title).toBe(' ');
    }
    expect(web).toMatch(
      /^web\s+continuous\s+trace\s+#12 crash-consistent, 2\.0s ago\s+2\.0s\s+0 B\s+2\.0 KiB\/s\s+11ms$/,
    );
    expect(demo.length).toBeLessThan(140);
    expect(demo).not.toContain('losetup');
    expect(notes).toEqual([
      '  stalled: agent not heard for 40 s',
      `  db: scan, ${long}`,
      '  db: write amplification unknown (the scan tracker does not see writes)',
    ]);
  });

  it('rounds freeze times', () => {
    expect(formatMs(11.480110999998942)).toBe('11ms');
    expect(formatMs(0.4321)).toBe('0.4ms');
    expect(formatMs(1234)).toBe('1.2s');
  });
});

describe('the bandwidth cap under an app', () => {
  it('says nothing without a cap, the cap when it does not hold, and plainly when it holds the RPO back', () => {
    expect(capNote(row({}))).toBeUndefined();
    expect(
      capNote(row({ link: { compression: 'zstd:6 (adaptive)', heldFraction: 0 } })),
    ).toBeUndefined();
    expect(
      capNote(
        row({
          link: {
            compression: 'zstd:6 (adaptive)',
            capBytesPerSec: 20 * 1024 * 1024,
            cap: '20MiB/s',
            heldFraction: 0.1,
          },
        }),
      ),
    ).toBe('bandwidth cap 20.0 MiB/s, zstd:6 (adaptive)');
    expect(
      capNote(
        row({
          link: {
            compression: 'zstd:9 (adaptive)',
            capBytesPerSec: 10 * 1024 * 1024,
            cap: '10MiB/s mon-fri 08:00-18:00, 50MiB/s',
            heldFraction: 0.8,
          },
        }),
      ),
    ).toBe(
      'bandwidth cap 10.0 MiB/s (10MiB/s mon-fri 08:00-18:00, 50MiB/s) holds the RPO back: batches waited for it 80% of the time (raise it with `throttle web RATE` or --max-rate)',
    );
  });
});

describe('write amplification under an app', () => {
  const KiB = 1024;
  const MiB = 1024 * KiB;
  const volume = (name: string, writtenBytes: number, x64: number) =>
    volumeRow(name, writeCostOf(writtenBytes, 1, 4, x64));

  it('shows each traced volume’s figure and, when high over enough writes, one line of advice', () => {
    const lines = statusTable(
      [
        row({
          trackers: { data: { kind: 'trace' }, idle: { kind: 'trace' }, few: { kind: 'trace' } },
          volumes: [volume('data', 200 * MiB, 16), volume('idle', 0, 0), volume('few', MiB, 16)],
        }),
      ],
      now,
    );
    const notes = lines.slice(2);
    expect(notes[0]).toBe(
      '  data: write amplification 16.0x at 64 KiB blocks (200 MiB written in the last 10m dirtied 3.1 GiB of blocks; 4 KiB: 1.0x, 16 KiB: 4.0x)',
    );
    expect(notes[1]).toMatch(
      /^ {2}data: advice: 4 KiB blocks would cut that to 1\.0x \(94% fewer block bytes to ship\)\. The block size is fixed once replicated/,
    );
    expect(notes[2]).toBe('  idle: write amplification -, no writes in the last 10m');
    // Few writes: the figure, no advice.
    expect(notes[3]).toMatch(/^ {2}few: write amplification 16\.0x/);
    expect(notes).toHaveLength(4);
  });

  it('shows nothing for a volume whose agent is too old to report it', () => {
    const lines = statusTable([row({ volumes: [volumeRow('data')] })], now);
    expect(lines).toHaveLength(2);
  });
});
