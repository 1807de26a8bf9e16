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
