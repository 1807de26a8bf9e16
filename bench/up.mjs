#!/usr/bin/env node
// `npm run bench:up`: what a newcomer waits for with `dr up --demo`, on a fresh home each time,
// as root (ext4 on a loop device, fsfreeze, block tracing) and without root (DR_DEMO_ROOTLESS=1:
// the database file, the service's own hook, scanning): time until everything is up, until the
// first consistent point, demo-shop's lag (RPO now) sampled every second for 20 s, a drill's RTO
// and the data-loss window its check reports, the time `dr up` takes to stop, and `dr doctor`.
//   node bench/up.mjs [--smoke]
//   --smoke: the rootless trial only, with 2 lag samples: the same path in well under a minute.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { bin, freePort, pct } from './lib.mjs';

const { values: args } = parseArgs({
  strict: false, // npm run bench passes every bench the same arguments
  options: { smoke: { type: 'boolean', default: false } },
});
const SAMPLE_S = args.smoke ? 2 : 20;

function dr(env, ...args) {
  const r = spawnSync(process.execPath, [bin, ...args], {
    env,
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

async function trial(label, extraEnv) {
  const dir = mkdtempSync(join(tmpdir(), 'lifeboat-bench-up-'));
  const home = join(dir, 'home');
  const env = {
    ...process.env,
    DR_HOME: home,
    DR_LOG_LEVEL: 'warn',
    REDIS_URL: '',
    DR_GATEWAY: '',
    ...extraEnv,
  };
  const t0 = performance.now();
  const up = spawn(
    process.execPath,
    [bin, 'up', '--demo', '--no-console', '--listen', `127.0.0.1:${await freePort()}`],
    {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let text = '';
  up.stdout.on('data', (c) => (text += c));
  up.stderr.on('data', (c) => (text += c));
  const exited = new Promise((r) => up.once('exit', r));
  try {
    while (!text.includes('Ctrl-C stops everything')) {
      if (up.exitCode !== null) throw new Error(`dr up exited:\n${text}`);
      if (performance.now() - t0 > 120_000) throw new Error(`dr up not ready:\n${text}`);
      await sleep(20);
    }
    const ready = performance.now() - t0;
    for (;;) {
      const s = dr(env, 'status', 'demo-shop', '--json');
      if (s.code === 0 && JSON.parse(s.out).lastConsistentPoint) break;
      if (performance.now() - t0 > 180_000) throw new Error(`no point: ${s.out}${s.err}`);
      await sleep(100);
    }
    const firstPoint = performance.now() - t0;
    const lags = [];
    const freezes = [];
    for (let i = 0; i < SAMPLE_S; i++) {
      const s = JSON.parse(dr(env, 'status', 'demo-shop', '--json').out);
      if (s.lagSeconds !== null) lags.push(s.lagSeconds);
      if (s.lastFreezeMs !== null) freezes.push(s.lastFreezeMs);
      await sleep(1000);
    }
    const d = dr(env, 'drill', 'demo-shop', '--wait', '--json');
    const json = JSON.parse(d.out.slice(d.out.indexOf('{')));
    const health = json.health?.output ?? '';
    const window = /data-loss window (\d+\.\d) s \((\d+) newer/.exec(health);
    const td = performance.now();
    const doc = dr(env, 'doctor', '--json');
    const doctorMs = performance.now() - td;
    const ts = performance.now();
    up.kill('SIGTERM');
    await exited;
    const stopMs = performance.now() - ts;
    const row = {
      label,
      readyS: (ready / 1000).toFixed(1),
      firstPointS: (firstPoint / 1000).toFixed(1),
      lagP50: pct(lags, 50)?.toFixed(2),
      lagMax: Math.max(...lags).toFixed(2),
      freezeP50: pct(freezes, 50)?.toFixed(1),
      rtoMs: json.rto?.totalMs,
      window: window ? `${window[1]} s (${window[2]} orders)` : health.split('\n')[0],
      stopS: (stopMs / 1000).toFixed(1),
      doctor: `${(doctorMs / 1000).toFixed(1)} s, exit ${doc.code}`,
      stoppedClean: text.includes('nothing left running'),
    };
    return row;
  } finally {
    if (up.exitCode === null) {
      up.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

const rows = [];
if (process.getuid?.() === 0 && !args.smoke)
  rows.push(await trial('root: ext4 + fsfreeze + trace', {}));
rows.push(await trial('rootless: file + app hook + scan', { DR_DEMO_ROOTLESS: '1' }));
console.log(
  '| run | up ready | first point | lag p50 / max | freeze p50 | drill RTO | data-loss window | stop | doctor |',
);
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
for (const r of rows) {
  console.log(
    `| ${r.label} | ${r.readyS} s | ${r.firstPointS} s | ${r.lagP50} s / ${r.lagMax} s | ${r.freezeP50} ms | ${r.rtoMs} ms | ${r.window} | ${r.stopS} s${r.stoppedClean ? '' : ' (NOT clean)'} | ${r.doctor} |`,
  );
}
