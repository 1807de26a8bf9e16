import type { AppConfig } from '../../core/config.js';
import { errorMessage } from '../../core/errors.js';
import { absentMacs } from '../agent/absent-macs.js';
import { scanChanges } from '../capture/scan-tracker.js';
import { VolumeFile } from '../capture/volume-file.js';
import type { KeyEncryptionKey } from '../crypto/key-encryption-key.js';
import { MAC_BYTES, volumeKeysOf } from '../crypto/volume-key.js';
import type { GatewayClient } from '../transport/gateway-client.js';
import type { PointDetail } from '../transport/wire-types.js';
import { requireSignedRecord } from './point-check.js';
import { type BlockProblem, readPointVolume } from './point-reader.js';
import type { ReadParallelism } from './read-parallelism.js';

export interface VerifyReport {
  app: string;
  point: number;
  volumes: Array<{ volume: string; blocks: number; digestOk: boolean; sourceChecked: boolean }>;
  problems: BlockProblem[];
  ok: boolean;
}

/**
 * Checks a point: every block authenticates, decrypts and matches its MAC,
 * and each volume matches its committed digest. With `source`, also compares
 * the point with the live volumes, fetching only MACs from the gateway.
 */
export async function verifyPoint({
  client,
  kek,
  app,
  point,
  source,
  parallel,
  onProgress,
}: {
  client: GatewayClient;
  kek: KeyEncryptionKey;
  app: string;
  point: PointDetail;
  source?: AppConfig | undefined;
  /** Ranges fetched at once and worker threads: dr.yaml's recovery.restoreParallel / restoreWorkers. */
  parallel?: ReadParallelism | undefined;
  onProgress?: (volume: string, done: number, total: number) => void;
}): Promise<VerifyReport> {
  const report: VerifyReport = { app, point: point.id, volumes: [], problems: [], ok: true };
  try {
    requireSignedRecord(kek, app, point);
  } catch (err) {
    // A record that does not verify vouches for nothing: no block is worth reading.
    report.problems.push({ volume: '*', block: -1, reason: errorMessage(err) });
    report.ok = false;
    return report;
  }
  for (const volume of Object.keys(point.volumes)) {
    const r = await readPointVolume({
      client,
      kek,
      app,
      point,
      volume,
      collectProblems: true,
      ...(parallel ? { parallel } : {}),
      onProgress: (d, t) => onProgress?.(volume, d, t),
    });
    report.problems.push(...r.problems);
    if (!r.digestOk && r.problems.length === 0) {
      report.problems.push({
        volume,
        block: -1,
        reason: 'volume digest does not match: a block is missing, swapped or from another point',
      });
    }
    let sourceChecked = false;
    const live = source?.volumes.find((v) => v.name === volume);
    if (live) {
      report.problems.push(
        ...(await compareWithSource(client, kek, app, point, volume, live.path)),
      );
      sourceChecked = true;
    }
    report.volumes.push({ volume, blocks: r.blocks, digestOk: r.digestOk, sourceChecked });
  }
  report.ok = report.problems.length === 0;
  return report;
}

async function compareWithSource(
  client: GatewayClient,
  kek: KeyEncryptionKey,
  app: string,
  point: PointDetail,
  volume: string,
  path: string,
): Promise<BlockProblem[]> {
  const info = point.volumeInfo.find((v) => v.name === volume);
  const size = point.volumes[volume]?.size ?? 0;
  if (!info) return [{ volume, block: -1, reason: 'the point does not describe this volume' }];
  const keys = volumeKeysOf(kek, app, info);
  const known = absentMacs(keys, size);
  for (const [block, mac] of await client.macs(app, point.id, volume)) {
    if ((block + 1) * MAC_BYTES <= known.length) mac.copy(known, block * MAC_BYTES);
  }
  let file: VolumeFile;
  try {
    file = await VolumeFile.open(volume, path);
  } catch (err) {
    return [{ volume, block: -1, reason: `source unreadable: ${errorMessage(err)}` }];
  }
  try {
    const liveSize = await file.size();
    const problems: BlockProblem[] = [];
    if (liveSize !== size)
      problems.push({
        volume,
        block: -1,
        reason: `source is ${liveSize} bytes, the point ${size}`,
      });
    for await (const changed of scanChanges({
      volume: file,
      size,
      blockSize: info.blockSize,
      macKey: keys.mac,
      known,
    })) {
      problems.push({
        volume,
        block: changed.block,
        reason: 'source block differs from the point',
      });
    }
    return problems;
  } finally {
    await file.close();
  }
}
