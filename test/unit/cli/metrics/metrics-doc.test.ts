// docs/metrics.md's tables are the registries' own; no metric breaks promtool's naming rules.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { createAgentMetrics } from '../../../../cli/metrics/agent-metrics.js';
import { createControlMetrics } from '../../../../cli/metrics/control-metrics.js';
import { createGatewayMetrics } from '../../../../cli/metrics/gateway-metrics.js';
import { metricsTables, withTables } from '../../../../cli/metrics/metrics-doc.js';

const page = fileURLToPath(new URL('../../../../docs/metrics.md', import.meta.url));

describe('docs/metrics.md', () => {
  it('holds exactly the tables the registries make (else: npm run docs:metrics)', async () => {
    const redis = new Redis({ lazyConnect: true }); // never connected
    try {
      const text = await readFile(page, 'utf8');
      const tables = await metricsTables(redis);
      expect(tables.serve).toMatch(
        /`lifeboat_alerts_open` +\| gauge +\| `kind`, `severity`, `acknowledged`/,
      );
      expect(withTables(text, tables), 'docs/metrics.md is stale: run `npm run docs:metrics`').toBe(
        text,
      );
    } finally {
      redis.disconnect();
    }
  });

  it('no registry exports a gauge named like a counter (promtool check metrics)', async () => {
    const redis = new Redis({ lazyConnect: true });
    try {
      const registries = [
        (await createGatewayMetrics(() => [])).registry,
        (await createAgentMetrics('web')).registry,
        (await createControlMetrics({ redis, prefix: 'lifeboat:' })).registry,
      ];
      for (const r of registries) {
        const text = await r.metrics();
        const gauges = [...text.matchAll(/^# TYPE (\S+) gauge$/gm)].map((m) => m[1] as string);
        expect(gauges.filter((g) => g.endsWith('_total'))).toEqual([]);
        expect(text).toContain('nodejs_active_handles '); // the plain gauges stay
      }
    } finally {
      redis.disconnect();
    }
  });
});
