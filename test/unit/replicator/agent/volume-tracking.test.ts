import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync, truncateSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { silentLog } from '../../../../core/log.js';
import { VolumeTracking } from '../../../../replicator/agent/volume-tracking.js';
import { VolumeFile } from '../../../../replicator/capture/volume-file.js';
import { blockMac } from '../../../../replicator/crypto/volume-key.js';
import { missingFeature } from '../../../helpers/skip.js';

const BS = 64 * 1024;
const SIZE = 256 * BS;

function xfsIoMissing(): string | undefined {
  try {
    execFileSync('xfs_io', ['-V'], { stdio: 'ignore' });
    return undefined;
  } catch {
    // not installed: nothing to walk holes with
    return 'xfs_io is not installed (apt-get install xfsprogs)';
  }
}

describe.skipIf(missingFeature(xfsIoMissing(), 'VolumeTracking whole-volume scans'))(
  'VolumeTracking whole-volume scans',
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'lifeboat-tracking-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const key = randomBytes(32);
    const path = join(dir, 'v.img');
    const fd = openSync(path, 'w');
    writeSync(fd, randomBytes(2 * BS), 0, 2 * BS, 100 * BS);
    closeSync(fd);
    truncateSync(path, SIZE);
    const known = Buffer.alloc((SIZE / BS) * 16);
    const zeroMac = blockMac(key, Buffer.alloc(BS));
    for (let b = 0; b < SIZE / BS; b++) zeroMac.copy(known, b * 16);

    async function round(fullCopy: boolean) {
      const volume = await VolumeFile.open('v', path);
      const tracking = await VolumeTracking.open('scan', volume, BS, silentLog, {}, fullCopy);
      const r = await tracking.round({ volume, size: SIZE, blockSize: BS, macKey: key, known });
      const blocks: number[] = [];
      for await (const c of r.changes) blocks.push(c.block);
      await tracking.close();
      await volume.close();
      return { r, blocks, map: tracking.lastZeroMap };
    }

    it('maps the holes as the scan starts and finds the written blocks', async () => {
      const { r, blocks, map } = await round(false);
      expect(r.fullScan).toBe(true);
      expect(blocks).toEqual([100, 101]);
      expect(map?.source).toBe('holes');
      expect(map?.zeroBytes).toBeGreaterThanOrEqual(SIZE - 4 * BS);
    });

    it('with fullCopy reads every block and takes no map, finding the same blocks', async () => {
      const { blocks, map } = await round(true);
      expect(blocks).toEqual([100, 101]);
      expect(map).toBeUndefined();
    });
  },
);
