import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import { restoreVolume } from '../../replicator/recovery/restore-volume.js';
import type { GatewayClient } from '../../replicator/transport/gateway-client.js';
import { dr, kek, type TestHome } from './lifeboat-home.js';

/** `dr restore APP --point latest --allow-fuzzy --volume VOLUME --to FILE [more…]` in a test home, quietly. */
export function restoreLatest(
  t: TestHome,
  volume: string,
  to: string,
  app = 'web',
  more: string[] = [],
) {
  return dr(
    [
      '--home',
      t.home,
      'restore',
      app,
      '--point',
      'latest',
      '--allow-fuzzy',
      '--volume',
      volume,
      '--to',
      to,
      ...more,
    ],
    { DR_LOG_LEVEL: 'silent' },
  );
}

/** `dr restore APP --point POINT --volume VOLUME --to FILE` in a test home, quietly. */
export function restorePoint(t: TestHome, point: number, volume: string, to: string, app = 'web') {
  const args = ['restore', app, '--point', String(point), '--volume', volume, '--to', to];
  return dr(['--home', t.home, ...args], { DR_LOG_LEVEL: 'silent' });
}

/** Restores point `point` of `volume` to `to`, checks it is `expected` byte for byte, and that `dr verify` passes it. */
export async function restoreAndVerify(
  home: string,
  o: { app: string; point: number; volume: string; to: string; expected: Buffer },
): Promise<void> {
  const quiet = { DR_LOG_LEVEL: 'silent' };
  const point = String(o.point);
  const args = ['--home', home, 'restore', o.app, '--point', point, '--volume', o.volume];
  const r = await dr([...args, '--to', o.to], quiet);
  expect(r.code, r.err).toBe(0);
  expect((await readFile(o.to)).equals(o.expected)).toBe(true);
  const v = await dr(['--home', home, 'verify', o.app, '--point', point], quiet);
  expect(v.code, v.err).toBe(0);
}

/** Restores the latest point of `volume` in this process (restoreVolume) to `to`; its bytes. */
export async function restoreLatestHere(
  t: TestHome,
  client: GatewayClient,
  volume: string,
  to: string,
  app = 'web',
): Promise<Buffer> {
  await restoreVolume({
    client,
    kek: await kek(t.home),
    app,
    point: await client.point(app, 'latest'),
    volume,
    to,
    force: true,
  });
  return readFile(to);
}

/**
 * Flips a byte at each tenth of the app's first segment file (or of every one), the gateway
 * stopped meanwhile by the caller: records there no longer authenticate.
 */
export async function tamperSegments(t: TestHome, every = false, app = 'web'): Promise<void> {
  const segDir = join((await t.config()).storeDir, 'apps', app, 'segments');
  const names = (await readdir(segDir)).sort();
  for (const name of every ? names : names.slice(0, 1)) {
    const seg = join(segDir, name);
    const bytes = await readFile(seg);
    for (let k = 1; k < 10; k++) {
      const at = Math.floor((bytes.length * k) / 10);
      bytes[at] = (bytes[at] as number) ^ 0x55;
    }
    await writeFile(seg, bytes);
  }
}
