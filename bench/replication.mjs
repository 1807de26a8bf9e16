#!/usr/bin/env node
// Benchmark: initial sync and one incremental cycle of a 1 GiB volume of random
// data, agent → gateway on loopback with TLS and encryption, against rsync.
// Prints the figures and the ratios to rsync; never part of `npm test`.
//   node bench/replication.mjs [--size-mib 1024] [--change 0.05] [--trials 3] [--json]
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { bin, freePort, needCommand, root, say } from './lib.mjs';

const { values: args } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '1024' },
    change: { type: 'string', default: '0.05' },
    json: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    trials: { type: 'string', default: '3' },
  },
});
const SIZE = Number(args['size-mib']) * 1024 * 1024;
const BLOCK = 64 * 1024;
const CHANGE = Number(args.change);
const TRIALS = Math.max(1, Number(args.trials));

if (!existsSync(join(root, 'dist/cli/main.js'))) {
  say('bench: build first (npm run build)');
  process.exit(2);
}
needCommand('bench', 'rsync');

const work = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'lifeboat-bench-'));
const src = join(work, 'volume.img');
const rsyncDst = join(work, 'rsync-copy.img');

function dr(argv, opts = {}) {
  const r = spawnSync(process.execPath, [bin, ...argv], {
    encoding: 'utf8',
    ...opts,
  });
  if (r.status !== 0) throw new Error(`dr ${argv.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

/** Peak resident set (VmHWM) of a running process, in bytes. */
function peakRss(pid) {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0; // the process has exited; the last sample stands
  }
}

/** Runs a command to completion, sampling its peak RSS; returns { ms, peak, stdout }. */
function timed(cmd, argv) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let peak = 0;
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    const timer = setInterval(() => (peak = Math.max(peak, peakRss(child.pid))), 20);
    child.on('exit', (code) => {
      clearInterval(timer);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (code !== 0)
        reject(new Error(`${cmd} ${argv.join(' ')} exited ${code}: ${stderr.slice(-2000)}`));
      else resolve({ ms, peak, stdout });
    });
  });
}

function writeRandomImage() {
  const fd = openSync(src, 'w');
  const chunk = 8 * 1024 * 1024;
  for (let o = 0; o < SIZE; o += chunk)
    writeSync(fd, randomBytes(Math.min(chunk, SIZE - o)), 0, Math.min(chunk, SIZE - o), o);
  closeSync(fd);
}

function rewriteBlocks(fraction) {
  const blocks = SIZE / BLOCK;
  const count = Math.round(blocks * fraction);
  const chosen = new Set();
  while (chosen.size < count) chosen.add(randomInt(blocks));
  const fd = openSync(src, 'r+');
  for (const b of chosen) writeSync(fd, randomBytes(BLOCK), 0, BLOCK, b * BLOCK);
  closeSync(fd);
  return count;
}

const mb = (bytes, ms) => bytes / 1024 / 1024 / (ms / 1000);
const fmt = (n, d = 2) => n.toFixed(d);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** One trial: a fresh home, gateway and rsync copy; the same volume content for both tools. */
async function trial(n) {
  const home = join(work, `home-${n}`);
  rmSync(rsyncDst, { force: true });
  const port = await freePort();
  dr(['--home', home, 'init', '--gateway', `127.0.0.1:${port}`]);
  dr(['--home', home, 'app', 'add', 'bench', '--volume', `data=${src}`]);
  const gateway = spawn(process.execPath, [bin, '--home', home, 'gateway'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, DR_LOG_LEVEL: 'warn' },
  });
  let gwPeak = 0;
  const gwTimer = setInterval(() => (gwPeak = Math.max(gwPeak, peakRss(gateway.pid))), 20);
  try {
    await new Promise((resolve, reject) => {
      let out = '';
      gateway.stdout.on('data', (c) => {
        out += c;
        if (out.includes('gateway listening')) resolve();
      });
      gateway.on('exit', (code) => reject(new Error(`gateway exited ${code}`)));
    });
    const agentArgs = [bin, '--home', home, 'agent', '--app', 'bench', '--once', '--json'];
    execFileSync('sync');
    const initial = await timed(process.execPath, agentArgs);
    execFileSync('sync');
    const rsyncInitial = await timed('rsync', ['--inplace', '--times', src, rsyncDst]);
    // The same copy made durable, as the gateway's copy is before it acknowledges.
    rmSync(rsyncDst, { force: true });
    execFileSync('sync');
    const rsyncInitialDurable = await timed('sh', [
      '-c',
      `rsync --inplace --times '${src}' '${rsyncDst}' && sync`,
    ]);
    const changed = rewriteBlocks(CHANGE);
    execFileSync('sync');
    const incremental = await timed(process.execPath, agentArgs);
    execFileSync('sync');
    const rsyncInc = await timed('rsync', [
      '--inplace',
      '--times',
      '--no-whole-file',
      src,
      rsyncDst,
    ]);
    gwPeak = Math.max(gwPeak, peakRss(gateway.pid));
    const i = JSON.parse(initial.stdout);
    const c = JSON.parse(incremental.stdout);
    say(
      `  trial ${n}: initial ${fmt(initial.ms / 1000)} s vs rsync ${fmt(rsyncInitial.ms / 1000)} s; ` +
        `incremental ${fmt(incremental.ms / 1000)} s vs rsync ${fmt(rsyncInc.ms / 1000)} s`,
    );
    return {
      changed,
      initialMs: initial.ms,
      initialCycleMs: i.ms,
      initialBytes: i.bytesSent,
      rsyncInitialMs: rsyncInitial.ms,
      rsyncInitialDurableMs: rsyncInitialDurable.ms,
      incMs: incremental.ms,
      incCycleMs: c.ms,
      incBlocks: c.blocksSent,
      incBytes: c.bytesSent,
      rsyncIncMs: rsyncInc.ms,
      agentPeak: Math.max(initial.peak, incremental.peak),
      gatewayPeak: gwPeak,
    };
  } finally {
    clearInterval(gwTimer);
    gateway.kill('SIGTERM');
    await new Promise((r) => gateway.once('exit', r));
    rmSync(home, { recursive: true, force: true });
  }
}

try {
  say(`bench: ${SIZE / 1024 / 1024} MiB volume of random data in ${work}, ${TRIALS} trials`);
  writeRandomImage();
  const trials = [];
  for (let n = 1; n <= TRIALS; n++) trials.push(await trial(n));
  const m = (k) => median(trials.map((t) => t[k]));
  const result = {
    date: new Date().toISOString(),
    sizeBytes: SIZE,
    trials: TRIALS,
    changedBlocks: trials[0].changed,
    initial: {
      ms: Math.round(m('initialMs')),
      cycleMs: Math.round(m('initialCycleMs')),
      mbPerSec: Number(fmt(mb(SIZE, m('initialMs')))),
      bytesSent: trials[0].initialBytes,
      rsyncMs: Math.round(m('rsyncInitialMs')),
      ratioToRsync: Number(fmt(m('initialMs') / m('rsyncInitialMs'))),
      rsyncSyncMs: Math.round(m('rsyncInitialDurableMs')),
      ratioToRsyncSync: Number(fmt(m('initialMs') / m('rsyncInitialDurableMs'))),
    },
    incremental: {
      ms: Math.round(m('incMs')),
      cycleMs: Math.round(m('incCycleMs')),
      blocksSent: trials[0].incBlocks,
      bytesSent: trials[0].incBytes,
      rsyncMs: Math.round(m('rsyncIncMs')),
      ratioToRsync: Number(fmt(m('incMs') / m('rsyncIncMs'))),
    },
    peakRssMiB: {
      agent: Number(fmt(Math.max(...trials.map((t) => t.agentPeak)) / 1024 / 1024, 1)),
      gateway: Number(fmt(Math.max(...trials.map((t) => t.gatewayPeak)) / 1024 / 1024, 1)),
    },
  };
  if (args.json) console.log(JSON.stringify(result, null, 2));
  else {
    const i = result.initial;
    const n = result.incremental;
    console.log(
      `replication benchmark: ${SIZE / 1024 / 1024} MiB random volume, 64 KiB blocks, TLS 1.3 + AES-256-GCM on loopback, median of ${TRIALS}`,
    );
    console.log(
      `initial sync        ${fmt(i.ms / 1000)} s, ${i.mbPerSec} MB/s (agent cycle ${fmt(i.cycleMs / 1000)} s) | rsync --inplace ${fmt(i.rsyncMs / 1000)} s | ratio ${i.ratioToRsync}x (target <= 1.0)`,
    );
    console.log(
      `  durable copies    rsync --inplace && sync ${fmt(i.rsyncSyncMs / 1000)} s | ratio ${i.ratioToRsyncSync}x (Lifeboat fsyncs before it acknowledges)`,
    );
    console.log(
      `incremental (${(CHANGE * 100).toFixed(0)} %)   ${fmt(n.ms / 1000)} s, ${n.blocksSent} blocks (agent cycle ${fmt(n.cycleMs / 1000)} s) | rsync --inplace --no-whole-file ${fmt(n.rsyncMs / 1000)} s | ratio ${n.ratioToRsync}x (target <= 0.7)`,
    );
    console.log(
      `peak RSS            agent ${result.peakRssMiB.agent} MiB, gateway ${result.peakRssMiB.gateway} MiB (target <= 200 MiB each)`,
    );
  }
} finally {
  if (!args.keep) rmSync(work, { recursive: true, force: true });
}
