#!/usr/bin/env node
// Benchmark: initial sync and one incremental cycle of a 1 GiB volume of random
// data, agent → gateway on loopback with TLS and encryption, against rsync.
// Prints the figures and the ratios to rsync; never part of `npm test`.
//   node bench/replication.mjs [--size-mib 1024] [--change 0.05] [--json]
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
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '1024' },
    change: { type: 'string', default: '0.05' },
    json: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
  },
});
const SIZE = Number(args['size-mib']) * 1024 * 1024;
const BLOCK = 64 * 1024;
const CHANGE = Number(args.change);
const bin = fileURLToPath(new URL('../bin/dr.js', import.meta.url));
const say = (s) => process.stderr.write(`${s}\n`);

if (!existsSync(fileURLToPath(new URL('../dist/cli/main.js', import.meta.url)))) {
  say('bench: build first (npm run build)');
  process.exit(2);
}
if (spawnSync('rsync', ['--version']).status !== 0) {
  say('bench: rsync is missing. To resolve, run: apt-get install -y rsync');
  process.exit(2);
}

const work = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'lifeboat-bench-'));
const home = join(work, 'home');
const src = join(work, 'volume.img');
const rsyncDst = join(work, 'rsync-copy.img');

function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function dr(argv, opts = {}) {
  const r = spawnSync(process.execPath, [bin, '--home', home, ...argv], {
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

let gateway;
try {
  say(`bench: ${SIZE / 1024 / 1024} MiB volume of random data in ${work}`);
  writeRandomImage();
  const port = await freePort();
  dr(['init', '--gateway', `127.0.0.1:${port}`]);
  dr(['app', 'add', 'bench', '--volume', `data=${src}`]);

  gateway = spawn(process.execPath, [bin, '--home', home, 'gateway'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, DR_LOG_LEVEL: 'warn' },
  });
  let gwPeak = 0;
  const gwTimer = setInterval(() => (gwPeak = Math.max(gwPeak, peakRss(gateway.pid))), 20);
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
  const initialReport = JSON.parse(initial.stdout);
  execFileSync('sync');
  const rsyncInitial = await timed('rsync', ['--inplace', '--times', src, rsyncDst]);

  const changed = rewriteBlocks(CHANGE);
  execFileSync('sync');
  const incremental = await timed(process.execPath, agentArgs);
  const incReport = JSON.parse(incremental.stdout);
  execFileSync('sync');
  const rsyncInc = await timed('rsync', ['--inplace', '--times', '--no-whole-file', src, rsyncDst]);
  gwPeak = Math.max(gwPeak, peakRss(gateway.pid));
  clearInterval(gwTimer);

  const result = {
    date: new Date().toISOString(),
    sizeBytes: SIZE,
    changedBlocks: changed,
    initial: {
      ms: Math.round(initial.ms),
      cycleMs: initialReport.ms,
      mbPerSec: Number(fmt(mb(SIZE, initial.ms))),
      bytesSent: initialReport.bytesSent,
      rsyncMs: Math.round(rsyncInitial.ms),
      ratioToRsync: Number(fmt(initial.ms / rsyncInitial.ms)),
    },
    incremental: {
      ms: Math.round(incremental.ms),
      cycleMs: incReport.ms,
      blocksSent: incReport.blocksSent,
      bytesSent: incReport.bytesSent,
      scanMbPerSec: Number(fmt(mb(SIZE, incremental.ms))),
      rsyncMs: Math.round(rsyncInc.ms),
      ratioToRsync: Number(fmt(incremental.ms / rsyncInc.ms)),
    },
    peakRssMiB: {
      agent: Number(fmt(Math.max(initial.peak, incremental.peak) / 1024 / 1024, 1)),
      gateway: Number(fmt(gwPeak / 1024 / 1024, 1)),
    },
  };
  if (args.json) console.log(JSON.stringify(result, null, 2));
  else {
    const i = result.initial;
    const n = result.incremental;
    console.log(
      `replication benchmark, ${SIZE / 1024 / 1024} MiB random volume, 64 KiB blocks, TLS 1.3 + AES-256-GCM on loopback`,
    );
    console.log(
      `initial sync       ${fmt(i.ms / 1000)} s  (${i.mbPerSec} MB/s; agent cycle ${fmt(i.cycleMs / 1000)} s)   rsync --inplace ${fmt(i.rsyncMs / 1000)} s   ratio ${i.ratioToRsync}x (target <= 1.0)`,
    );
    console.log(
      `incremental (${(CHANGE * 100).toFixed(0)} %) ${fmt(n.ms / 1000)} s  (${n.blocksSent} blocks sent; agent cycle ${fmt(n.cycleMs / 1000)} s)   rsync --no-whole-file ${fmt(n.rsyncMs / 1000)} s   ratio ${n.ratioToRsync}x (target <= 0.7)`,
    );
    console.log(
      `peak RSS           agent ${result.peakRssMiB.agent} MiB, gateway ${result.peakRssMiB.gateway} MiB (target <= 200 MiB each)`,
    );
  }
} finally {
  gateway?.kill('SIGTERM');
  if (!args.keep) rmSync(work, { recursive: true, force: true });
}
