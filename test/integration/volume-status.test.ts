// Each volume's size, backlog, throughput and first-copy progress as the gateway publishes them, from a real agent.
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Gateway } from '../../replicator/gateway/gateway-server.js';
import type { VolumeStatus } from '../../replicator/transport/wire-types.js';
import { dr, type TestHome, testHome, writeImage } from '../helpers/lifeboat-home.js';
import { startDr, stopAll } from '../helpers/processes.js';
import { waitFor } from '../helpers/wait-for.js';

const SIZE = 8 * 1024 * 1024;

describe('volume status: per-volume size, throughput and initial-sync progress', () => {
  let t: TestHome | undefined;
  let g: Gateway | undefined;
  afterEach(async () => {
    await stopAll();
    await t?.cleanup(); // closes its gateways too
    g = undefined;
    t = undefined;
  });

  const home = async (): Promise<TestHome> => {
    const h = await testHome();
    await writeImage(join(h.dir, 'a.img'), SIZE, 3);
    await writeImage(join(h.dir, 'b.img'), SIZE / 2, 4);
    const added = await dr([
      ...['--home', h.home, 'app', 'add', 'web'],
      ...['--volume', `a=${join(h.dir, 'a.img')}`, '--volume', `b=${join(h.dir, 'b.img')}`],
    ]);
    expect(added.code).toBe(0);
    return h;
  };
  const volumes = (gw: Gateway): VolumeStatus[] =>
    gw.statuses().find((s) => s.app === 'web')?.volumes ?? [];

  it('publishes each volume once the first copy is done, with the bytes it received', async () => {
    t = await home();
    g = await t.startGateway();
    const once = await dr(['--home', t.home, 'agent', '--app', 'web', '--once'], {
      DR_LOG_LEVEL: 'silent',
    });
    expect(once.code).toBe(0);
    const vols = volumes(g);
    expect(vols.map((v) => [v.name, v.sizeBytes, v.backlogBytes])).toEqual([
      ['a', SIZE, 0],
      ['b', SIZE / 2, 0],
    ]);
    // Both were shipped within the last minute; neither is in its first copy any more.
    for (const v of vols) {
      expect(v.throughputBytesPerSec).toBeGreaterThan(0);
      expect(v.initialSync).toBeUndefined();
    }
    const store = await waitFor('store usage', () => g?.statuses()[0]?.store);
    expect(store.totalBytes).toBeGreaterThan(store.freeBytes);
  });

  it("shows a first copy's progress while the gateway refuses its batches", async () => {
    t = await home();
    // A reserve no disk has: every batch is refused (507) and the agent keeps retrying its first copy.
    g = await t.startGateway({ minFreeSpace: Number.MAX_SAFE_INTEGER });
    const agent = startDr(['agent', '--app', 'web', '--interval', '1s'], { DR_HOME: t.home });
    const gw = g;
    const sync = await waitFor(
      'the first copy of volume a in the published state',
      () => volumes(gw).find((v) => v.name === 'a')?.initialSync,
      60_000,
    );
    expect(sync.sizeBytes).toBe(SIZE);
    expect(sync.doneBytes).toBeGreaterThanOrEqual(0);
    expect(sync.doneBytes).toBeLessThanOrEqual(SIZE);
    expect(gw.statuses().find((s) => s.app === 'web')?.points).toBe(0);
    await agent.stop();
  });
});
