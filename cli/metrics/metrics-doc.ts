/** The metric tables of docs/metrics.md, made from the registries themselves so the page cannot drift. */
import type { Redis } from 'ioredis';
import type { Registry } from 'prom-client';
import { createAgentMetrics } from './agent-metrics.js';
import { createControlMetrics } from './control-metrics.js';
import { createGatewayMetrics } from './gateway-metrics.js';

export type MetricsPart = 'gateway' | 'agent' | 'serve';

/** Where a generated table sits in the page: between these two lines. */
export const tableStart = (part: MetricsPart) =>
  `<!-- generated: ${part} metrics (npm run docs:metrics) -->`;
export const TABLE_END = '<!-- end of generated table -->';

/**
 * Each part's table: Lifeboat's own metrics (lifeboat_…), with type, labels and help text.
 * `redis` is never connected: the control metrics touch Redis only when refreshed.
 */
export async function metricsTables(redis: Redis): Promise<Record<MetricsPart, string>> {
  return {
    gateway: await table((await createGatewayMetrics(() => [])).registry),
    agent: await table((await createAgentMetrics('app')).registry),
    serve: await table((await createControlMetrics({ redis, prefix: 'lifeboat:' })).registry),
  };
}

async function table(registry: Registry): Promise<string> {
  const rows: string[][] = [];
  for (const m of registry.getMetricsAsArray()) {
    const metric = m as unknown as {
      name: string;
      labelNames?: string[];
      get(): Promise<{ type: string; help: string }>;
    };
    const { name, labelNames = [] } = metric;
    if (!name.startsWith('lifeboat_')) continue;
    const { type, help } = await metric.get();
    rows.push([
      `\`${name}\``,
      String(type),
      labelNames.map((l) => `\`${l}\``).join(', '),
      help.replaceAll('|', '\\|'),
    ]);
  }
  const head = ['metric', 'type', 'labels', 'meaning'];
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (r: string[]) =>
    `| ${r.map((cell, c) => cell.padEnd(widths[c] ?? 0)).join(' | ')} |`;
  return [
    line(head),
    `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`,
    ...rows.map(line),
  ].join('\n');
}

/** The page with each generated table replaced by `tables`; throws if a marker is missing. */
export function withTables(page: string, tables: Record<MetricsPart, string>): string {
  let out = page;
  for (const part of Object.keys(tables) as MetricsPart[]) {
    const start = out.indexOf(tableStart(part));
    const end = start < 0 ? -1 : out.indexOf(TABLE_END, start);
    if (start < 0 || end < 0)
      throw new Error(`docs/metrics.md has no "${tableStart(part)}" … "${TABLE_END}" block`);
    out = `${out.slice(0, start)}${tableStart(part)}\n${tables[part]}\n${out.slice(end)}`;
  }
  return out;
}
