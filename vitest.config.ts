import { defineConfig } from 'vitest/config';

// CI reads the pass/fail counts from a JSON report (LIFEBOAT_TEST_REPORT names the file).
const report = process.env.LIFEBOAT_TEST_REPORT;
// Two test files at a time: the machine has two cores and most files wait on processes, Redis
// and disks more than they compute (the suite is serial in 16 min, about half that with two).
// LIFEBOAT_TEST_WORKERS=1 runs them one at a time.
const workers = Number(process.env.LIFEBOAT_TEST_WORKERS) || 2;
// The short chaos runs (kill -9, partitions, full disks, the round trip under fire) and the tests
// of the chaos harness's leak reports take about five minutes of the two cores: `npm run
// test:chaos` runs them (LIFEBOAT_CHAOS_TESTS=1), so `npm test` stays within CI's 15 minutes.
const chaos = process.env.LIFEBOAT_CHAOS_TESTS === '1';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: [
      '**/node_modules/**',
      ...(chaos ? [] : ['test/chaos/chaos.test.ts', 'test/chaos/leaks.test.ts']),
    ],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: workers,
    reporters: report ? ['default', ['json', { outputFile: report }]] : ['default'],
  },
});
