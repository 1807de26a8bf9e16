/** The agent's volumes: opened in order, one agent per device, everything released on failure and close. */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DrError } from '../../../../core/errors.js';
import { silentLog } from '../../../../core/log.js';
import { VolumeSet } from '../../../../replicator/agent/volume-set.js';
import { appConfig, image, tempDir } from './agent-fixture.js';

describe('VolumeSet', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  const open = (volumes: Record<string, string>, tracker: 'scan' | 'trace' = 'scan', app = 'web') =>
    VolumeSet.open({
      app,
      appConfig: appConfig(volumes),
      tracker,
      trace: {},
      log: silentLog,
      lockDir: join(dir, 'locks'),
    });
  const refusal = (p: Promise<unknown>) =>
    p.then(
      () => {
        throw new Error('expected a refusal');
      },
      (e: unknown) => {
        expect(e).toBeInstanceOf(DrError);
        return e as DrError;
      },
    );

  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
  });
  afterEach(async () => {
    await cleanup();
  });

  it('opens every volume in dr.yaml order with its size and tracker', async () => {
    const a = await image(join(dir, 'a.img'), 8, 4096);
    const b = await image(join(dir, 'b.img'), 3, 4096);
    const set = await open({ data: a, logs: b });
    try {
      expect(set.volumes.map((v) => [v.name, v.size, v.tracking.info.kind])).toEqual([
        ['data', 8 * 4096, 'scan'],
        ['logs', 3 * 4096, 'scan'],
      ]);
      expect(set.quiescer.enabled).toBe(false);
    } finally {
      await set.close();
    }
  });

  it('holds a machine-wide lock on each device, naming the app, until it closes', async () => {
    const a = await image(join(dir, 'a.img'), 2, 4096);
    const set = await open({ data: a });
    const locks = await readdir(join(dir, 'locks'));
    expect(locks).toHaveLength(1);
    const body = JSON.parse(await readFile(join(dir, 'locks', locks[0] as string), 'utf8'));
    expect(body).toMatchObject({ app: 'web', pid: process.pid });
    await set.close();
    expect(await readdir(join(dir, 'locks'))).toEqual([]);
  });

  it('releases the volumes it opened when a later one fails', async () => {
    const a = await image(join(dir, 'a.img'), 2, 4096);
    const err = await refusal(open({ data: a, logs: join(dir, 'missing.img') }));
    expect(err.code).toBe('volume_unreadable');
    expect(err.message).toMatch(/volume logs .*missing\.img\) does not exist/);
    // The first volume's device lock is released again.
    expect(await readdir(join(dir, 'locks'))).toEqual([]);
  });

  it('refuses block tracing of an image file, saying how to go on, and releases it', async () => {
    const a = await image(join(dir, 'a.img'), 2, 4096);
    const err = await refusal(open({ data: a }, 'trace'));
    expect(err.code).toBe('usage');
    expect(err.message).toMatch(/--tracker trace cannot follow volume data/);
    expect(err.remedy).toMatch(/--tracker auto or --tracker scan/);
    expect(await readdir(join(dir, 'locks'))).toEqual([]);
  });
});
