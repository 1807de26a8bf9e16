#!/usr/bin/env node
// Benchmark: initial sync and one incremental cycle of a 1 GiB volume of random
// data, agent → gateway on loopback with TLS and encryption, against rsync.
// Prints the figures and the ratios to rsync; never part of `npm test`.
//   node bench/replication.mjs [--size-mib 1024] [--change 0.05] [--trials 3] [--settle 20] [--smoke] [--json]
//   --smoke: a 16 MiB volume, one trial, no pauses: the same path (the link alone included) in seconds.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  bin,
  drSync,
  freePort,
  needCommand,
  rewriteBlocks,
  root,
  say,
  writeRandomImage,
} from './lib.mjs';

// `--store s3`: the folder store against the object store (Ceph RGW here), bench/object-store.mjs.
if (process.argv.includes('--store')) {
  await import('./object-store.mjs');
  process.exit(process.exitCode ?? 0);
}

const { values: args } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '1024' },
    change: { type: 'string', default: '0.05' },
    json: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    trials: { type: 'string', default: '3' },
    settle: { type: 'string', default: '20' },
    smoke: { type: 'boolean', default: false },
  },
});
const SIZE = (args.smoke ? 16 : Number(args['size-mib'])) * 1024 * 1024;
const BLOCK = 64 * 1024;
const CHANGE = Number(args.change);
const TRIALS = args.smoke ? 1 : Math.max(1, Number(args.trials));
const SETTLE_MS = args.smoke ? 0 : Math.max(0, Number(args.settle)) * 1000;

if (!existsSync(join(root, 'dist/cli/main.js'))) {
  say('bench: build first (npm run build)');
  process.exit(2);
}
needCommand('bench', 'rsync');

const work = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'lifeboat-bench-'));
const src = join(work, 'volume.img');
const rsyncDst = join(work, 'rsync-copy.img');

/** Peak resident set (VmHWM) of a running process, in bytes. */
function peakRss(pid) {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0; // the process has exited; the last sample stands
  }
}

/**
 * Flushes, then waits: on this kind of virtual machine the disk slows down
 * for a while after a burst of writing (rsync back to back: 2.0–2.8 s; after
 * a 15 s pause: 1.4 s), so whatever ran just before would tax the next.
 */
async function settle() {
  execFileSync('sync');
  await new Promise((r) => setTimeout(r, SETTLE_MS));
}

/** Runs a command to completion (after settling), sampling its peak RSS; returns { ms, peak, stdout }. */
async function timed(cmd, argv) {
  await settle();
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

const mb = (bytes, ms) => bytes / 1024 / 1024 / (ms / 1000);
const fmt = (n, d = 2) => n.toFixed(d);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * The link alone: the volume over TLS 1.3 with the home's certificates into a
 * file, not fsync'd (bench/tls-floor.mjs), timed from process start like the
 * agent. What no agent on this machine can beat.
 */
async function transportFloor(home) {
  const floorOut = join(work, 'floor-copy.img');
  const script = join(root, 'bench/tls-floor.mjs');
  const tls = join(home, 'tls');
  const server = spawn(process.execPath, [script, 'server', '--tls', tls, '--out', floorOut], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const port = await new Promise((resolve, reject) => {
      let out = '';
      server.stdout.on('data', (c) => {
        out += c;
        const m = /listening (\d+)/.exec(out);
        if (m) resolve(m[1]);
      });
      server.on('exit', (code) => reject(new Error(`tls-floor server exited ${code}`)));
    });
    return await timed(process.execPath, [
      script,
      'client',
      '--tls',
      tls,
      '--port',
      port,
      '--file',
      src,
    ]);
  } finally {
    server.kill('SIGTERM');
    rmSync(floorOut, { force: true });
  }
}

/** One trial: a fresh home, gateway and rsync copy; the same volume content for both tools. */
async function trial(n) {
  const home = join(work, `home-${n}`);
  rmSync(rsyncDst, { force: true });
  const port = await freePort();
  drSync(['--home', home, 'init', '--gateway', `127.0.0.1:${port}`]);
  drSync(['--home', home, 'app', 'add', 'bench', '--volume', `data=${src}`]);
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
    const runAgent = () => timed(process.execPath, agentArgs);
    const runRsync = async () => {
      const plain = await timed('rsync', ['--inplace', '--times', src, rsyncDst]);
      // The same copy made durable, as the gateway's copy is before it acknowledges.
      rmSync(rsyncDst, { force: true });
      const durable = await timed('sh', [
        '-c',
        `rsync --inplace --times '${src}' '${rsyncDst}' && sync`,
      ]);
      return { plain, durable, floor: await transportFloor(home) };
    };
    // Besides the pause before each run, odd trials run the agent first and
    // even trials rsync first, so that neither always follows the other.
    let initial;
    let copies;
    if (n % 2 === 1) {
      initial = await runAgent();
      copies = await runRsync();
    } else {
      copies = await runRsync();
      initial = await runAgent();
    }
    const { plain: rsyncInitial, durable: rsyncInitialDurable, floor } = copies;
    const changed = rewriteBlocks(src, SIZE, CHANGE, BLOCK);
    const incremental = await timed(process.execPath, agentArgs);
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
      `  trial ${n} (${n % 2 === 1 ? 'agent first' : 'rsync first'}): initial ${fmt(initial.ms / 1000)} s vs rsync ${fmt(rsyncInitial.ms / 1000)} s (TLS floor ${fmt(floor.ms / 1000)} s); ` +
        `incremental ${fmt(incremental.ms / 1000)} s vs rsync ${fmt(rsyncInc.ms / 1000)} s`,
    );
    return {
      changed,
      initialMs: initial.ms,
      initialCycleMs: i.ms,
      initialBytes: i.bytesSent,
      rsyncInitialMs: rsyncInitial.ms,
      rsyncInitialDurableMs: rsyncInitialDurable.ms,
      floorMs: floor.ms,
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
  writeRandomImage(src, SIZE);
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
      floorMs: Math.round(m('floorMs')),
      floorRatioToRsync: Number(fmt(m('floorMs') / m('rsyncInitialMs'))),
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
      `  link alone        TLS 1.3 pipe of the file, no block work ${fmt(i.floorMs / 1000)} s | ratio ${i.floorRatioToRsync}x to rsync (the floor for any agent on this machine)`,
    );
    if (i.floorRatioToRsync > 1)
      console.log(
        '                    the link alone is slower than rsync here: no agent that honours TLS can meet <= 1.0x on this machine',
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
