// The heartbeat body: a scanned volume reports no write figures (its writes are unknown).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { silentLog } from '../../../../core/log.js';
import { AgentStatus } from '../../../../replicator/agent/agent-status.js';
import type { OpenVolume } from '../../../../replicator/agent/cut.js';
import { VolumeTracking } from '../../../../replicator/agent/volume-tracking.js';
import { VolumeFile } from '../../../../replicator/capture/volume-file.js';

describe('AgentStatus.heartbeat', () => {
  it('sends no write figures for a scanned volume, never a made-up one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lifeboat-status-'));
    const path = join(dir, 'v.img');
    await writeFile(path, Buffer.alloc(65536));
    const file = await VolumeFile.open('v', path);
    const tracking = await VolumeTracking.open('scan', file, 65536, silentLog);
    try {
      expect(tracking.writeCost(Date.now())).toBeUndefined();
      const hb = new AgentStatus().heartbeat(
        1000,
        [{ name: 'v', tracking } as unknown as OpenVolume],
        undefined,
      );
      expect(hb.volumes).toEqual({ v: { backlogBytes: 0 } });
      expect(hb.trackers).toEqual({ v: { kind: 'scan' } });
    } finally {
      await tracking.close();
      await file.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
