import { readFile } from 'node:fs/promises';
import { expect } from 'vitest';
import { dr, type TestHome } from './lifeboat-home.js';

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
