import { dr, type TestHome } from './lifeboat-home.js';

/** `dr restore APP --point latest --allow-fuzzy --volume VOLUME --to FILE` in a test home, quietly. */
export function restoreLatest(t: TestHome, volume: string, to: string, app = 'web') {
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
    ],
    { DR_LOG_LEVEL: 'silent' },
  );
}

/** `dr restore APP --point POINT --volume VOLUME --to FILE` in a test home, quietly. */
export function restorePoint(t: TestHome, point: number, volume: string, to: string, app = 'web') {
  const args = ['restore', app, '--point', String(point), '--volume', volume, '--to', to];
  return dr(['--home', t.home, ...args], { DR_LOG_LEVEL: 'silent' });
}
