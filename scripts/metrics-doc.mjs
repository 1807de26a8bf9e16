#!/usr/bin/env node
// Rewrites the metric tables of docs/metrics.md from the registries (run after `npm run build`).
import { readFileSync, writeFileSync } from 'node:fs';
import { Redis } from 'ioredis';

const { metricsTables, withTables } = await import('../dist/cli/metrics/metrics-doc.js');
const page = new URL('../docs/metrics.md', import.meta.url);
const redis = new Redis({ lazyConnect: true }); // never connected: nothing is refreshed
try {
  const next = withTables(readFileSync(page, 'utf8'), await metricsTables(redis));
  writeFileSync(page, next);
  process.stdout.write('docs/metrics.md: metric tables regenerated\n');
} finally {
  redis.disconnect();
}
