#!/usr/bin/env node
// Writes test/durations.json (seconds per test file) from a vitest JSON report, for the suite's
// longest-first order (vitest.config.ts). Run after a quiet full run:
//   LIFEBOAT_TEST_REPORT=/tmp/vitest.json npm test; node scripts/test-durations.mjs /tmp/vitest.json
import { readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const report = process.argv[2];
if (!report) {
  console.error('usage: node scripts/test-durations.mjs REPORT.json (a vitest JSON report)');
  process.exit(2);
}
let parsed;
try {
  parsed = JSON.parse(readFileSync(report, 'utf8'));
} catch (err) {
  console.error(`test-durations: cannot read ${report} as a vitest JSON report: ${err.message}`);
  process.exit(2);
}
const root = join(import.meta.dirname, '..');
const out = {};
for (const t of parsed.testResults ?? []) {
  const file = relative(root, t.name).replace(/^.*?(test\/)/, '$1');
  out[file] = Math.round((t.endTime - t.startTime) / 100) / 10;
}
const sorted = Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : 1)));
writeFileSync(join(root, 'test', 'durations.json'), `${JSON.stringify(sorted, null, 2)}\n`);
console.log(`test/durations.json: ${Object.keys(sorted).length} files`);
