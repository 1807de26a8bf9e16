import { emptyAppStatus } from '../../replicator/gateway/app-status.js';
import type { AppStatus, WriteCost } from '../../replicator/transport/wire-types.js';

/** An app's published status with nothing in it yet, `over` on top. */
export function appStatusRow(over: Partial<AppStatus> = {}): AppStatus {
  return { ...emptyAppStatus('web', 'continuous'), ...over };
}

/**
 * App web replicating at `now` as a gateway publishes it (JSON): agent seen 2 s ago, point 12
 * (crash-consistent) 30 s ago, `over` on top.
 */
export function continuousStatusJson(now: number, over: Partial<AppStatus> = {}): string {
  const iso = (ms: number) => new Date(ms).toISOString();
  const point = { id: 12, time: iso(now - 30_000), label: 'crash-consistent' as const };
  const row = appStatusRow({
    agent: { host: 'web-1', pid: 7, lastSeen: iso(now - 2_000), clockOffsetMs: 0 },
    lastPoint: point,
    lastConsistentPoint: point,
    lagSeconds: 30,
    lastFreezeMs: 9,
    points: 12,
    ...over,
  });
  return JSON.stringify({ ...row, publishedAt: iso(now - 500) });
}

/**
 * A volume's write figures over a 10-minute window: `written` bytes dirtying `x4`, `x16` and
 * `x64` times as many block bytes at 4, 16 and 64 KiB.
 */
export function writeCostOf(
  written: number,
  x4: number,
  x16: number,
  x64: number,
  blockSize = 65536,
): WriteCost {
  return {
    windowSeconds: 600,
    writtenBytes: written,
    blockSize,
    dirtied: [
      { blockSize: 4096, bytes: written * x4 },
      { blockSize: 16384, bytes: written * x16 },
      { blockSize: 65536, bytes: written * x64 },
    ],
  };
}

/** A volume of an app's status, with these write figures when given. */
export function volumeRow(name: string, writes?: WriteCost) {
  return {
    name,
    sizeBytes: 1024 * 1024 * 1024,
    backlogBytes: 0,
    throughputBytesPerSec: 0,
    ...(writes ? { writes } : {}),
  };
}
