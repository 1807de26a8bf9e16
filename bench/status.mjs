#!/usr/bin/env node
// Benchmark: the status page and the control plane's /metrics at scale. A real redis-server
// holds what a busy installation leaves there: 20 apps with 24 h of RPO history each (a sample
// every 10 s, as the gateway keeps it), 2 500 operations (5 000 events), 50 approvals and 10
// alerts. Times GET /, GET /api/status (6 h and 24 h windows) and GET /metrics over HTTP.
//   node bench/status.mjs [--apps 20] [--runs 40] [--smoke] [--json]   (needs redis-server; npm run build first)
//   --smoke: 2 apps, 100 operations, 3 fetches of each route: the same path in a few seconds.
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import {
  AlertStore,
  ApprovalStore,
  createControlMetrics,
  createHttpServer,
  emitEvent,
  encodeRpoSample,
  metricsRoute,
  replicationKey,
  rpoHistoryKey,
  statusRoutes,
} from '../dist/bench/bench-api.js';
import { freePort, needCommand, pct, say } from './lib.mjs';

const { values: args } = parseArgs({
  strict: false, // npm run bench passes every bench the same arguments
  options: {
    apps: { type: 'string', default: '20' },
    runs: { type: 'string', default: '40' },
    json: { type: 'boolean', default: false },
    smoke: { type: 'boolean', default: false },
  },
});
const APPS = args.smoke ? 2 : Number(args.apps);
const RUNS = args.smoke ? 3 : Number(args.runs);
const OPERATIONS = args.smoke ? 100 : 2500;
needCommand('bench:status', 'redis-server');
const { Redis } = await import('ioredis');

const port = await freePort();
const server = spawn(
  'redis-server',
  ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
  { stdio: 'ignore' },
);
const url = `redis://127.0.0.1:${port}`;
const redis = new Redis(url, { maxRetriesPerRequest: null, lazyConnect: true });
redis.on('error', () => undefined); // refused while redis-server starts: the loop below retries
for (let i = 0; ; i++) {
  try {
    await redis.connect();
    break;
  } catch {
    if (i > 100) throw new Error('redis-server did not start');
    await sleep(50);
  }
}
const prefix = 'lifeboat:';
let http;
try {
  say(
    `bench:status: seeding ${APPS} apps with 24 h of history, ${OPERATIONS} operations, approvals, alerts`,
  );
  const now = Date.now();
  const apps = Array.from({ length: APPS }, (_, i) => `app-${String(i).padStart(2, '0')}`);
  for (const app of apps) {
    const m = redis.multi();
    for (let t = now - 86_400_000; t <= now; t += 10_000)
      m.zadd(
        rpoHistoryKey(app, prefix),
        t,
        encodeRpoSample({ time: t, lagSeconds: 1 + (t % 7), phase: 'continuous' }),
      );
    const point = { id: 900, time: new Date(now - 1500).toISOString(), label: 'crash-consistent' };
    m.hset(
      replicationKey(prefix),
      app,
      JSON.stringify({
        app,
        phase: 'continuous',
        agent: null,
        lastPoint: point,
        lastConsistentPoint: point,
        lagSeconds: 1.5,
        trackers: {},
        lastFreezeMs: 12,
        lastResync: null,
        points: 900,
        bytesShipped: 1e9,
        throughputBytesPerSec: 1e6,
        storedBytes: 1e10,
        backlogBytes: 0,
        publishedAt: new Date(now).toISOString(),
      }),
    );
    await m.exec();
  }
  const events = `${prefix}events`;
  for (let i = 0; i < OPERATIONS; i++) {
    const opId = `op-bench${i}`;
    const app = apps[i % APPS];
    await emitEvent(redis, events, { opId, app, job: 'drill', type: 'started' });
    await emitEvent(redis, events, {
      opId,
      app,
      job: 'drill',
      type: 'finished',
      result: {
        opId,
        app,
        mode: 'drill',
        point: 1,
        dataAgeSeconds: 2,
        resumes: 0,
        rto: { materialiseMs: 9000, launchMs: 10, healthyMs: 300, totalMs: 9400 },
        health: { ok: true, output: 'ok' },
        server: { id: 's' },
      },
    });
  }
  const approvals = new ApprovalStore(redis, prefix);
  for (let i = 1; i <= 50; i++)
    await approvals.create({
      id: `A-${i}`,
      opId: `op-appr${i}`,
      verb: 'failover',
      app: apps[i % APPS],
      requestedBy: 'console:alice',
      requestedPerson: 'alice',
      required: 2,
      groups: ['sre-oncall'],
      approvals: [],
      status: i % 5 === 0 ? 'pending' : 'granted',
      expiresAt: new Date(now + 3_600_000).toISOString(),
      expiresAtMs: now + 3_600_000,
      policy: 'approvals',
      args: {},
    });
  const alerts = new AlertStore(redis, prefix);
  for (let i = 0; i < 10; i++) await alerts.raise('rpo', apps[i % APPS], 'alerts', now);

  const control = await createControlMetrics({ redis, prefix });
  const routes = [
    ...statusRoutes({ redis, prefix, access: {}, configuredApps: () => apps }),
    metricsRoute(control.registry, {}, control.refresh),
  ];
  http = await createHttpServer({ listen: '127.0.0.1:0', routes });
  const time = async (path) => {
    const t0 = performance.now();
    const res = await fetch(`${http.url}${path}`);
    const body = await res.text();
    if (res.status !== 200) throw new Error(`${path}: ${res.status} ${body.slice(0, 200)}`);
    return { ms: performance.now() - t0, bytes: body.length };
  };
  const firstScrape = await time('/metrics');
  const figures = { apps: APPS, runs: RUNS, firstMetricsScrapeMs: firstScrape.ms };
  for (const [name, path] of [
    ['page6h', '/'],
    ['page24h', '/?hours=24'],
    ['api6h', '/api/status'],
    ['metrics', '/metrics'],
  ]) {
    await time(path); // warm
    const runs = [];
    let bytes = 0;
    for (let i = 0; i < RUNS; i++) {
      const r = await time(path);
      runs.push(r.ms);
      bytes = r.bytes;
    }
    figures[name] = { p50: pct(runs, 50), p99: pct(runs, 99), bytes };
  }
  if (args.json) process.stdout.write(`${JSON.stringify(figures)}\n`);
  else {
    const f = (x) =>
      `p50 ${x.p50.toFixed(1)} ms, p99 ${x.p99.toFixed(1)} ms, ${(x.bytes / 1024).toFixed(0)} KiB`;
    say(`status page, 6 h charts:   ${f(figures.page6h)}`);
    say(`status page, 24 h charts:  ${f(figures.page24h)}`);
    say(`/api/status, 6 h:          ${f(figures.api6h)}`);
    say(`/metrics (steady):         ${f(figures.metrics)}`);
    say(
      `/metrics, first scrape (reads ${OPERATIONS * 2} events): ${figures.firstMetricsScrapeMs.toFixed(1)} ms`,
    );
  }
} finally {
  await http?.close();
  redis.disconnect();
  server.kill('SIGTERM');
}
