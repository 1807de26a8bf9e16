import type { Registry } from 'prom-client';

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
  return { prom, registry, registers: [registry] };
}
