// What the benchmarks use of the project, in one typed module compiled with it: a moved or
// renamed export fails `npm run build`, not a benchmark run weeks later. bench/*.mjs import
// only this file's build (dist/bench/bench-api.js), never a dist/ path of their own.
import { homePaths } from '../core/home.js';
import { GatewayClient } from '../replicator/transport/gateway-client.js';
import { tlsClientOptions } from '../replicator/transport/tls-options.js';

export { createHttpServer } from '../cli/http-server.js';
export { createControlMetrics } from '../cli/metrics/control-metrics.js';
export { metricsRoute } from '../cli/metrics/metrics-route.js';
export { statusRoutes } from '../cli/status-page/status-routes.js';
export { parseConfig } from '../core/config.js';
export { AlertStore } from '../engine/alert-store.js';
export { ApprovalStore } from '../engine/approval-store.js';
export { createEngine } from '../engine/create-engine.js';
export { evaluatePolicies } from '../engine/evaluate-policies.js';
export { loadPolicyDir } from '../engine/policy-set.js';
export { findZeroRanges } from '../replicator/capture/zero-ranges.js';
export { worthCompressing } from '../replicator/crypto/block-compression.js';
export {
  encodeRpoSample,
  replicationKey,
  rpoHistoryKey,
} from '../replicator/gateway/state-publisher.js';
export { emitEvent } from '../replicator/jobs/operation-events.js';

/** A client of the gateway at 127.0.0.1:`port`, with the mutual-TLS certificates of `home`. */
export function gatewayClientFor(home: string, port: number): GatewayClient {
  return new GatewayClient({
    address: `127.0.0.1:${port}`,
    tls: tlsClientOptions(homePaths(home), '127.0.0.1'),
  });
}

/** A client of the gateway at `address` (HOST:PORT), with the mutual-TLS certificates of `home`. */
export function gatewayClientAt(home: string, address: string): GatewayClient {
  return new GatewayClient({
    address,
    tls: tlsClientOptions(homePaths(home), address.slice(0, address.lastIndexOf(':'))),
  });
}

/** The app's lag (seconds behind, on the gateway's clock), undefined before its first point. */
export async function lagSeconds(client: GatewayClient, app: string): Promise<number | undefined> {
  const [s] = await client.status(app);
  return s?.lagSeconds ?? undefined;
}

/** A recovery point's instant (ms since the epoch) and label, as the gateway records them. */
export async function pointTime(
  client: GatewayClient,
  app: string,
  point: number,
): Promise<{ time: number; label: string }> {
  const p = await client.point(app, point);
  return { time: Date.parse(p.time), label: p.label };
}
export { DirtyBitmap } from '../replicator/capture/dirty-bitmap.js';
export { BIO_LINE } from '../replicator/capture/trace-tracker.js';
export { WriteTally } from '../replicator/capture/write-tally.js';
