import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { createAgentMetrics } from '../../../../cli/metrics/agent-metrics.js';
import { createControlMetrics } from '../../../../cli/metrics/control-metrics.js';
import { createGatewayMetrics } from '../../../../cli/metrics/gateway-metrics.js';

const doc = (name: string) =>
  readFile(fileURLToPath(new URL(`../../../../docs/${name}`, import.meta.url)), 'utf8');

/** Our metrics (lifeboat_…) the three registries export, with their label names. */
async function exportedMetrics(): Promise<Map<string, string[]>> {
  // Never connected: the control metrics only touch Redis when refreshed.
  const redis = new Redis({ lazyConnect: true });
  try {
    const registries = [
      (await createGatewayMetrics(() => [])).registry,
      (await createAgentMetrics('web')).registry,
      (await createControlMetrics({ redis, prefix: 'lifeboat:' })).registry,
    ];
    const out = new Map<string, string[]>();
    for (const r of registries)
      for (const m of r.getMetricsAsArray()) {
        const { name, labelNames = [] } = m as unknown as { name: string; labelNames?: string[] };
        if (name.startsWith('lifeboat_')) out.set(name, [...labelNames]);
      }
    return out;
  } finally {
    redis.disconnect();
  }
}

const exported = async () => new Set((await exportedMetrics()).keys());

describe('metric names', () => {
  it('no metric has a label Prometheus sets itself (job, instance)', async () => {
    const all = await exportedMetrics();
    expect(all.get('lifeboat_job_seconds')).toEqual(['kind', 'outcome']);
    for (const [name, labels] of all) {
      expect(labels, name).not.toContain('job');
      expect(labels, name).not.toContain('instance');
    }
  });

  it('every metric the gateway, the agent and serve export is documented in docs/metrics.md', async () => {
    const text = await doc('metrics.md');
    const names = await exported();
    expect(names.size).toBeGreaterThan(20);
    for (const n of names) expect(text, n).toContain(`\`${n}\``);
  });

  it('the Grafana dashboard queries only metrics that exist', async () => {
    const names = await exported();
    const dashboard = JSON.parse(await doc('grafana-dashboard.json')) as {
      panels: { title: string; targets?: { expr: string }[] }[];
    };
    const queried = dashboard.panels.flatMap((p) =>
      (p.targets ?? []).map((t) => [p.title, t.expr] as const),
    );
    expect(queried.length).toBeGreaterThan(10);
    for (const [title, expr] of queried) {
      const used = expr.match(/lifeboat_[a-z_]+/g) ?? [];
      expect(used.length, `${title}: ${expr}`).toBeGreaterThan(0);
      for (const u of used) {
        const base = u.replace(/_(bucket|sum|count)$/, '');
        expect(names.has(base) || names.has(u), `${title}: ${u}`).toBe(true);
      }
    }
  });
});
