import { defineConfig } from 'vitest/config';

// CI reads the pass/fail counts from a JSON report (LIFEBOAT_TEST_REPORT names the file).
const report = process.env.LIFEBOAT_TEST_REPORT;
// Two test files at a time: the machine has two cores and most files wait on processes, Redis
// and disks more than they compute (the suite is serial in 16 min, about half that with two).
// LIFEBOAT_TEST_WORKERS=1 runs them one at a time.
const workers = Number(process.env.LIFEBOAT_TEST_WORKERS) || 2;

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: workers,
    reporters: report ? ['default', ['json', { outputFile: report }]] : ['default'],
  },
});
