// Chat's `status`: one line per app, and for `status APP` each volume's write amplification and advice.
import { describe, expect, it } from 'vitest';
import { publishedStates, statusLines } from '../../../engine/status-lines.js';
import type { AppStatus } from '../../../replicator/transport/wire-types.js';
import { appStatusRow, volumeRow, writeCostOf } from '../../helpers/app-status-row.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const now = Date.parse('2026-12-07T23:00:00Z');
const published = (over: Partial<AppStatus> = {}): string =>
  JSON.stringify(
    appStatusRow({
      lastPoint: { id: 4, time: '2026-12-07T22:59:58Z', label: 'crash-consistent' },
      lastConsistentPoint: { id: 4, time: '2026-12-07T22:59:58Z', label: 'crash-consistent' },
      lagSeconds: 2,
      points: 4,
      trackers: { data: { kind: 'trace' }, logs: { kind: 'scan' } },
      volumes: [
        volumeRow('data', writeCostOf(128 * MiB, 1, 173 / 128, 354 / 128)),
        volumeRow('logs'),
      ],
      ...over,
    }),
  );

describe('statusLines', () => {
  it('adds each volume’s write amplification and advice for one app, named app/volume', () => {
    const { lines, rows } = statusLines(
      { now: () => now },
      ['web'],
      publishedStates({ web: published() }),
      true,
    );
    expect(lines[0]).toMatch(/^web: continuous, RPO 2\.0 s/);
    expect(lines[1]).toMatch(/^web\/data: write amplification 2\.8x at 64 KiB blocks/);
    expect(lines[2]).toMatch(/^web\/data: advice: 16 KiB blocks would cut that to 1\.4x/);
    expect(lines[2]).toContain('--volume data=PATH');
    expect(lines[3]).toBe(
      'web/logs: write amplification unknown (the scan tracker does not see writes)',
    );
    expect(lines).toHaveLength(4);
    expect(rows[0]?.volumes?.[0]).toMatchObject({ blockSizeAdvice: { blockSize: 16 * KiB } });
  });

  it('keeps the list of every app to one line each, and an older gateway’s status unchanged', () => {
    const all = statusLines({ now: () => now }, ['web'], publishedStates({ web: published() }));
    expect(all.lines).toHaveLength(1);
    const old = statusLines(
      { now: () => now },
      ['web'],
      publishedStates({ web: published({ volumes: undefined, trackers: {} }) }),
      true,
    );
    expect(old.lines).toHaveLength(1);
  });
});
