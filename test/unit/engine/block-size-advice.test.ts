// Write amplification and block size advice as `dr status`, chat and the status page word them.
import { describe, expect, it } from 'vitest';
import {
  blockSizeAdvice,
  volumeWriteLines,
  withWriteCost,
  writeAmplification,
  writeCostLines,
} from '../../../engine/block-size-advice.js';
import type { AppStatus } from '../../../replicator/transport/wire-types.js';
import { appStatusRow, volumeRow, writeCostOf } from '../../helpers/app-status-row.js';

const KiB = 1024;
const MiB = 1024 * KiB;

const cost = writeCostOf;

/** bench:wan's steady workload: half the writes 4 KiB, half 64 KiB, at 4 KiB-aligned offsets. */
const fioMix = cost(1024 * MiB, 1, 92 / 68, 188 / 68);

describe('writeAmplification', () => {
  it('is block bytes per byte written, and undefined with no writes (no division by zero)', () => {
    expect(writeAmplification(cost(64 * MiB, 1, 4, 16))).toBe(16);
    expect(writeAmplification(cost(64 * MiB, 1, 4, 16), 16 * KiB)).toBe(4);
    expect(writeAmplification(cost(0, 0, 0, 0))).toBeUndefined();
    expect(writeAmplification(cost(64 * MiB, 1, 1, 1), 128 * KiB)).toBeUndefined();
  });
});

describe('blockSizeAdvice', () => {
  it('advises the largest smaller size that fits the writes', () => {
    expect(blockSizeAdvice(fioMix)).toEqual({ blockSize: 16 * KiB, writeAmplification: 92 / 68 });
    // 4 KiB writes alone: only 4 KiB fits.
    expect(blockSizeAdvice(cost(64 * MiB, 1, 4, 16))).toEqual({
      blockSize: 4 * KiB,
      writeAmplification: 1,
    });
  });

  it('says nothing with few writes, a block size that fits, or no smaller size that cuts enough', () => {
    expect(blockSizeAdvice(cost(64 * MiB - 1, 1, 4, 16))).toBeUndefined();
    expect(blockSizeAdvice(cost(0, 0, 0, 0))).toBeUndefined();
    expect(blockSizeAdvice(cost(1024 * MiB, 1, 1.5, 1.9))).toBeUndefined();
    // Scattered writes as large as 4 KiB blocks cut by less than a quarter.
    expect(blockSizeAdvice(cost(1024 * MiB, 2.5, 2.8, 3))).toBeUndefined();
    // Nothing smaller than 4 KiB is counted.
    expect(blockSizeAdvice(cost(1024 * MiB, 3, 3, 3, 4 * KiB))).toBeUndefined();
  });

  it('falls back to the size that cuts most when none fits', () => {
    expect(blockSizeAdvice(cost(1024 * MiB, 2.2, 4, 8))).toEqual({
      blockSize: 4 * KiB,
      writeAmplification: 2.2,
    });
  });
});

describe('volumeWriteLines', () => {
  it('gives the figure, then one line of advice naming the cut, the cost and the docs', () => {
    const [figure, advice, ...rest] = volumeWriteLines('data', fioMix, 'trace');
    expect(rest).toEqual([]);
    expect(figure).toBe(
      'data: write amplification 2.8x at 64 KiB blocks (1.0 GiB written in the last 10m dirtied 2.8 GiB of blocks; 4 KiB: 1.0x, 16 KiB: 1.4x)',
    );
    expect(advice).toMatch(
      /^data: advice: 16 KiB blocks would cut that to 1\.4x \(51% fewer block bytes to ship\)/,
    );
    expect(advice).toContain('`dr app add NEWAPP --volume data=PATH … --block-size 16KiB`');
    expect(advice).toContain('a new initial sync');
    expect(advice).toContain('docs/replication.md#choosing-a-block-size');
  });

  it('gives no advice when the block size fits', () => {
    expect(volumeWriteLines('data', cost(512 * MiB, 1, 1, 1), 'trace')).toEqual([
      'data: write amplification 1.0x at 64 KiB blocks (512 MiB written in the last 10m dirtied 512 MiB of blocks; 4 KiB: 1.0x, 16 KiB: 1.0x)',
    ]);
  });

  it('says no writes for a quiet window, unknown for a scanned volume, nothing for an older agent', () => {
    expect(volumeWriteLines('data', cost(0, 0, 0, 0), 'trace')).toEqual([
      'data: write amplification -, no writes in the last 10m',
    ]);
    expect(volumeWriteLines('data', undefined, 'scan')).toEqual([
      'data: write amplification unknown (the scan tracker does not see writes)',
    ]);
    expect(volumeWriteLines('data', undefined, 'trace')).toEqual([]);
    expect(volumeWriteLines('data', undefined, undefined)).toEqual([]);
  });
});

const app = appStatusRow;

describe('an app’s lines and JSON', () => {
  const volume = volumeRow;

  it('covers every volume, prefixed as asked, and volumes only the trackers name', () => {
    const s = app({
      trackers: { data: { kind: 'trace' }, logs: { kind: 'scan' }, old: { kind: 'trace' } },
      volumes: [volume('data', fioMix), volume('old')],
    });
    const lines = writeCostLines(s, 'web/');
    expect(lines.map((l) => l.slice(0, l.indexOf(':')))).toEqual([
      'web/data',
      'web/data',
      'web/logs',
    ]);
    expect(lines[1]).toContain('--volume data=PATH');
  });

  it('adds the amplification and advice to JSON volumes, and leaves an older gateway’s status alone', () => {
    const s = withWriteCost(app({ volumes: [volume('data', fioMix), volume('old')] }));
    expect(s.volumes?.[0]).toMatchObject({
      writeAmplification: 188 / 68,
      blockSizeAdvice: { blockSize: 16 * KiB },
    });
    expect(s.volumes?.[1]).not.toHaveProperty('writeAmplification');
    const bare = app({});
    expect(withWriteCost(bare)).toBe(bare);
  });

  it('says nothing for a state an older gateway published without trackers or volumes', () => {
    // Published states are read from Redis as the gateway wrote them: fields may be missing.
    const old = { app: 'web', phase: 'continuous', backlogBytes: 0 } as unknown as AppStatus;
    expect(writeCostLines(old, 'web/')).toEqual([]);
    expect(withWriteCost(old)).toBe(old);
  });
});
