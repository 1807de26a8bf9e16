import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

// CI reads the pass/fail counts from a JSON report (LIFEBOAT_TEST_REPORT names the file).
const report = process.env.LIFEBOAT_TEST_REPORT;
// Three test files at a time on two cores: most files wait on processes, Redis and disks more
// than they compute. With two at a time a quiet CI run kept 1.1 of the 2 cores busy and took
// 14 min 30 s, too near CI's 15. LIFEBOAT_TEST_WORKERS=1 runs them one at a time.
const workers = Number(process.env.LIFEBOAT_TEST_WORKERS) || 3;
// The short chaos runs (kill -9, partitions, full disks, the round trip under fire) and the tests
// of the chaos harness's leak reports take about five minutes of the two cores: `npm run
// test:chaos` runs them (LIFEBOAT_CHAOS_TESTS=1), so `npm test` stays within CI's 15 minutes.
const chaos = process.env.LIFEBOAT_CHAOS_TESTS === '1';

// Longest files first, from test/durations.json (a quiet run's seconds per file; `node
// scripts/test-durations.mjs REPORT` writes it). A fresh clone has no vitest cache, so the files
// ran in name order and the longest could start last: with two workers that tail cost about 90 s
// of CI's 15 minutes. Files not listed count as 5 s; a stale list only costs time.
const durations: Record<string, number> = (() => {
  try {
    return JSON.parse(readFileSync(new URL('./test/durations.json', import.meta.url), 'utf8'));
  } catch {
    return {};
  }
})();

class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const secondsOf = (f: TestSpecification) =>
      durations[relative(f.project.config.root, f.moduleId)] ?? 5;
    return [...files].sort((a, b) => secondsOf(b) - secondsOf(a));
  }
}

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
    sequence: { sequencer: LongestFirst },
    reporters: report ? ['default', ['json', { outputFile: report }]] : ['default'],
  },
});
