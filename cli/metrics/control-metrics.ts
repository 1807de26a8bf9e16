import type { Redis } from 'ioredis';
import type { Registry } from 'prom-client';
import { parseEvent } from '../../replicator/jobs/operation-events.js';
import { recoveryKeys } from '../../replicator/jobs/recovery-contract.js';
import { readOpenAlerts, readPendingApprovals } from '../observe/control-state.js';
import { readReplication, rpoNow } from '../observe/read-replication.js';
import { metricsRegistry } from './metrics-registry.js';

/** Seconds buckets for whole operations: a local drill takes seconds, a cloud failover minutes. */
const OPERATION_BUCKETS = [1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600];

export interface ControlMetrics {
  registry: Registry;
  /** Reads what changed in Redis since the last scrape; call before each scrape. */
  refresh(): Promise<void>;
}

/**
 * The metrics `dr serve` exposes, read from Redis: RPO per app from the state the gateway
 * publishes, job durations and RTO from the recovery events stream (followed from where the last
 * scrape stopped, so the histograms count each finished job once), and approvals pending and
 * alerts open from the engine's own records.
 */
export async function createControlMetrics({
  redis,
  prefix,
  now = Date.now,
}: {
  redis: Redis;
  prefix: string;
  now?: () => number;
}): Promise<ControlMetrics> {
  const { prom, registry, registers } = await metricsRegistry();
  const rpo = new prom.Gauge({
    name: 'lifeboat_rpo_seconds',
    help: 'RPO now: seconds since the newest consistent recovery point, from the published state',
    labelNames: ['app'],
    registers,
  });
  const jobSeconds = new prom.Histogram({
    name: 'lifeboat_job_seconds',
    help: 'Duration of recovery jobs, from started to finished, by kind (drill, failover …)',
    // not `job`: Prometheus gives every series its own `job` label (the scrape job)
    labelNames: ['kind', 'outcome'],
    buckets: OPERATION_BUCKETS,
    registers,
  });
  const rtoSeconds = new prom.Histogram({
    name: 'lifeboat_rto_seconds',
    help: 'Measured RTO of drills and failovers (start to healthy)',
    labelNames: ['mode'],
    buckets: OPERATION_BUCKETS,
    registers,
  });
  const lastRto = new prom.Gauge({
    name: 'lifeboat_last_rto_seconds',
    help: 'The last measured RTO of each app, split by step (materialise, launch, healthy, total)',
    labelNames: ['app', 'mode', 'step'],
    registers,
  });
  const running = new prom.Gauge({
    name: 'lifeboat_operations_running',
    help: 'Recovery jobs started and not yet finished, by kind',
    labelNames: ['kind'],
    registers,
  });
  const approvals = new prom.Gauge({
    name: 'lifeboat_approvals_pending',
    help: 'Approval requests waiting for people',
    registers,
  });
  const alerts = new prom.Gauge({
    name: 'lifeboat_alerts_open',
    help: 'Alerts not yet resolved, by kind, severity (critical once escalated) and acknowledgement',
    labelNames: ['kind', 'severity', 'acknowledged'],
    registers,
  });

  const events = recoveryKeys(prefix).events;
  let cursor = '0-0';
  /** `opId/job` → start time, for the jobs still running. */
  const started = new Map<string, number>();
  const followEvents = async () => {
    for (;;) {
      const batch = await redis.xrange(events, `(${cursor}`, '+', 'COUNT', 1000);
      for (const [id, fields] of batch) {
        cursor = id;
        const e = parseEvent(fields);
        if (!e) continue;
        const key = `${e.opId}/${e.job}`;
        if (e.type === 'started') {
          if (!started.has(key)) started.set(key, e.time);
        } else if (e.type === 'finished') {
          const t0 = started.get(key);
          started.delete(key);
          const outcome = e.error ? 'failed' : 'succeeded';
          if (t0 !== undefined) jobSeconds.observe({ kind: e.job, outcome }, (e.time - t0) / 1000);
          const r = e.result;
          if (r && 'rto' in r) {
            rtoSeconds.observe({ mode: r.mode }, r.rto.totalMs / 1000);
            const l = { app: r.app, mode: r.mode };
            lastRto.set({ ...l, step: 'materialise' }, r.rto.materialiseMs / 1000);
            lastRto.set({ ...l, step: 'launch' }, r.rto.launchMs / 1000);
            lastRto.set({ ...l, step: 'healthy' }, r.rto.healthyMs / 1000);
            lastRto.set({ ...l, step: 'total' }, r.rto.totalMs / 1000);
          }
        }
      }
      if (batch.length < 1000) break;
    }
    // A job whose worker died without an event is not running for ever: forget it after a day.
    for (const [k, t] of started) if (now() - t > 86_400_000) started.delete(k);
    running.reset();
    for (const k of started.keys()) running.inc({ kind: k.slice(k.lastIndexOf('/') + 1) });
  };

  const refreshOnce = async () => {
    const t = now();
    const [{ statuses }, pending, open] = await Promise.all([
      readReplication(redis, prefix),
      readPendingApprovals(redis, prefix, t),
      readOpenAlerts(redis, prefix),
      followEvents(),
    ]);
    rpo.reset();
    for (const s of statuses) {
      const v = rpoNow(s, t);
      if (v !== null) rpo.set({ app: s.app }, v);
    }
    approvals.set(pending.length);
    alerts.reset();
    for (const a of open) {
      const acknowledged = a.acknowledgedBy ? 'yes' : 'no';
      alerts.inc({ kind: a.kind, severity: a.severity, acknowledged });
    }
  };
  // Scrapes one at a time: two at once would read the same events and count them twice.
  let chain: Promise<void> = Promise.resolve();
  return {
    registry,
    refresh() {
      const next = chain.then(refreshOnce);
      chain = next.catch(() => undefined); // the failing scrape reports it; the next one retries
      return next;
    },
  };
}
