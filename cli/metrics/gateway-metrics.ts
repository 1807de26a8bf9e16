import type { Registry } from 'prom-client';
import type { BatchReceived } from '../../replicator/gateway/gateway-server.js';
import type { AppStatus } from '../../replicator/transport/wire-types.js';
import { metricsRegistry } from './metrics-registry.js';

/** Batch latency buckets in seconds: a batch is a few MiB written and fsync'd. */
export const BATCH_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export interface GatewayMetrics {
  registry: Registry;
  /** Pass to createGateway's `onBatch`. */
  onBatch: (b: BatchReceived) => void;
}

/**
 * The gateway's metrics: per-app state read from `statuses` at each scrape (RPO, phase, points,
 * backlog, last freeze, last resync) and counters fed by each batch. prom-client is loaded here,
 * on first use, so a gateway without metrics never pays for it.
 */
export async function createGatewayMetrics(statuses: () => AppStatus[]): Promise<GatewayMetrics> {
  const { prom, registry, registers } = await metricsRegistry();
  const perApp = (name: string, help: string, value: (s: AppStatus) => number | null | undefined) =>
    new prom.Gauge({
      name,
      help,
      labelNames: ['app'],
      registers,
      collect() {
        this.reset();
        for (const s of statuses()) {
          const v = value(s);
          if (v !== null && v !== undefined) this.set({ app: s.app }, v);
        }
      },
    });
  perApp(
    'lifeboat_rpo_seconds',
    'RPO now: seconds since the newest consistent recovery point (absent until there is one)',
    (s) => s.lagSeconds,
  );
  perApp('lifeboat_points', 'Recovery points kept', (s) => s.points);
  perApp('lifeboat_last_point_id', 'Id of the newest recovery point the gateway holds', (s) =>
    s.lastPoint ? s.lastPoint.id : null,
  );
  perApp('lifeboat_backlog_bytes', 'Bytes the agent has read but not yet had acknowledged', (s) =>
    s.phase === 'unprotected' ? null : s.backlogBytes,
  );
  perApp(
    'lifeboat_stored_bytes',
    'Bytes of encrypted records stored for the app',
    (s) => s.storedBytes,
  );
  perApp(
    'lifeboat_last_freeze_seconds',
    'How long the volumes were frozen for the last cut',
    (s) => (s.lastFreezeMs === null ? null : s.lastFreezeMs / 1000),
  );
  new prom.Gauge({
    name: 'lifeboat_app_phase',
    help: "The app's replication phase: 1 for the phase it is in",
    labelNames: ['app', 'phase'],
    registers,
    collect() {
      this.reset();
      for (const s of statuses()) this.set({ app: s.app, phase: s.phase }, 1);
    },
  });
  new prom.Gauge({
    name: 'lifeboat_last_resync_bytes',
    help: 'Bytes sent by the last resync by scan of a traced volume',
    labelNames: ['app', 'volume'],
    registers,
    collect() {
      this.reset();
      for (const s of statuses())
        if (s.lastResync) this.set({ app: s.app, volume: s.lastResync.volume }, s.lastResync.bytes);
    },
  });
  const shipped = new prom.Counter({
    name: 'lifeboat_bytes_shipped_total',
    help: 'Bytes of batches received and made durable (duplicates not counted)',
    labelNames: ['app'],
    registers,
  });
  const duplicates = new prom.Counter({
    name: 'lifeboat_duplicate_batches_total',
    help: 'Batches received again after a lost acknowledgement (idempotent, not stored twice)',
    labelNames: ['app'],
    registers,
  });
  const latency = new prom.Histogram({
    name: 'lifeboat_batch_seconds',
    help: 'Time from a batch request to its durable acknowledgement',
    labelNames: ['app'],
    buckets: BATCH_BUCKETS,
    registers,
  });
  return {
    registry,
    onBatch: ({ app, bytes, ms, duplicate }) => {
      if (duplicate) duplicates.inc({ app });
      else shipped.inc({ app }, bytes);
      latency.observe({ app }, ms / 1000);
    },
  };
}
