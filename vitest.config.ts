import { defineConfig } from 'vitest/config';

// CI reads the pass/fail counts from a JSON report (LIFEBOAT_TEST_REPORT names the file).
const report = process.env.LIFEBOAT_TEST_REPORT;

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    reporters: report ? ['default', ['json', { outputFile: report }]] : ['default'],
  },
});
