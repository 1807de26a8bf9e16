import type { Registry } from 'prom-client';

/** prom-client defaults that are gauges with a counter's `_total` suffix. */
export const FLAGGED_DEFAULTS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

/**
 * A fresh prom-client registry with the process's default metrics, and `registers` to pass to
 * each metric made on it. prom-client is loaded here, lazily: only commands that serve metrics pay.
 */
export async function metricsRegistry(): Promise<{
  prom: typeof import('prom-client');
  registry: Registry;
  registers: Registry[];
}> {
  const prom = await import('prom-client');
  const registry = new prom.Registry();
  prom.collectDefaultMetrics({ register: registry });
  // Gauges named like counters: `promtool check metrics` flags them, and nodejs_active_handles,
  // _requests and _resources (kept) carry the same totals.
  for (const name of FLAGGED_DEFAULTS) registry.removeSingleMetric(name);
  return { prom, registry, registers: [registry] };
}
