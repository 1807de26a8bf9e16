import type { Registry } from 'prom-client';
import type { AgentObserver } from '../../replicator/agent/replication-agent.js';
import { BATCH_BUCKETS } from './gateway-metrics.js';
import { metricsRegistry } from './metrics-registry.js';

/** Freeze buckets in seconds: a good cut freezes for tens of milliseconds. */
const FREEZE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5];

export interface AgentMetrics {
  registry: Registry;
  /** Pass to ReplicationAgent's `observe`. */
  observe: AgentObserver;
}

/**
 * The agent's own view, for `dr agent --metrics`: what it shipped, how long the gateway took to
 * acknowledge, how long each cut froze the volumes, what resyncs cost, and its RPO as it sees it
 * (now minus the cut time of its newest consistent point).
 */
export async function createAgentMetrics(
  app: string,
  now: () => number = Date.now,
): Promise<AgentMetrics> {
  const { prom, registry, registers } = await metricsRegistry();
  const labels = { app };
  let lastConsistent: number | undefined;
  new prom.Gauge({
    name: 'lifeboat_agent_rpo_seconds',
    help: 'Seconds since the cut of the newest consistent point this agent committed',
    labelNames: ['app'],
    registers,
    collect() {
      this.reset();
      if (lastConsistent !== undefined)
        this.set(labels, Math.max(0, (now() - lastConsistent) / 1000));
    },
  });
  const lastPoint = new prom.Gauge({
    name: 'lifeboat_agent_last_point_id',
    help: 'Id of the last point this agent committed; a gateway whose lifeboat_last_point_id is lower lost or withholds points',
    labelNames: ['app'],
    registers,
  });
  const shipped = new prom.Counter({
    name: 'lifeboat_agent_bytes_shipped_total',
    help: 'Bytes of batches sent and acknowledged by the gateway',
    labelNames: ['app'],
    registers,
  });
  const batch = new prom.Histogram({
    name: 'lifeboat_agent_batch_seconds',
    help: 'Time from sending a batch to its acknowledgement, retries included',
    labelNames: ['app'],
    buckets: BATCH_BUCKETS,
    registers,
  });
  const freeze = new prom.Histogram({
    name: 'lifeboat_agent_freeze_seconds',
    help: 'How long the volumes were frozen (fsfreeze or the quiesce hook) for a cut',
    labelNames: ['app'],
    buckets: FREEZE_BUCKETS,
    registers,
  });
  const cycle = new prom.Histogram({
    name: 'lifeboat_agent_cycle_seconds',
    help: 'Time of one replication cycle, from its start to its committed point',
    labelNames: ['app'],
    buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300],
    registers,
  });
  const points = new prom.Counter({
    name: 'lifeboat_agent_points_total',
    help: 'Recovery points committed, by consistency label',
    labelNames: ['app', 'label'],
    registers,
  });
  const failures = new prom.Counter({
    name: 'lifeboat_agent_cycle_failures_total',
    help: 'Cycles that failed and were retried',
    labelNames: ['app'],
    registers,
  });
  const resync = new prom.Counter({
    name: 'lifeboat_agent_resync_bytes_total',
    help: 'Bytes sent by resyncs by scan of traced volumes',
    labelNames: ['app', 'volume'],
    registers,
  });
  return {
    registry,
    observe: {
      batch: ({ bytes, ms }) => {
        shipped.inc(labels, bytes);
        batch.observe(labels, ms / 1000);
      },
      cycle: (r) => {
        cycle.observe(labels, r.ms / 1000);
        points.inc({ app, label: r.point.label });
        lastPoint.set(labels, r.point.id);
        if (r.freezeMs !== undefined) freeze.observe(labels, r.freezeMs / 1000);
        if (r.point.label !== 'fuzzy') lastConsistent = Date.parse(r.point.time);
      },
      cycleFailed: () => failures.inc(labels),
      resync: (r) => resync.inc({ app, volume: r.volume }, r.bytes),
    },
  };
}
