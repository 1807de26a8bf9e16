import { defineConfig } from 'vitest/config';

// `npm run chaos`: the long run only (scripts/chaos.mjs), printing as it goes.
export default defineConfig({
  test: {
    root: new URL('../..', import.meta.url).pathname,
    include: ['test/chaos/chaos-run.ts'],
    testTimeout: 0,
    hookTimeout: 120_000,
    pool: 'forks',
    disableConsoleIntercept: true,
  },
});
