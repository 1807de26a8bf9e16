#!/usr/bin/env node
// Benchmark: RPO under load. A 1 GiB loop device with ext4; fio writes at
// random (4 KiB and 64 KiB mixed) at 20 MB/s; the agent replicates with the
// trace tracker and fsfreeze, then with the scan tracker; rsync in a loop is
// the baseline (its RPO is its cycle time). Samples the lag every second.
//   node bench/rpo.mjs [--seconds 60] [--rate 20m] [--block-size 16KiB] [--smoke] [--json]   (root, fio, tracefs)
//   --smoke: a 128 MiB ext4, a 32 MiB fio file, 3 s at 4 MB/s per run: the same path in seconds.
//   --store s3: the trace run into the folder store, then into the object store (Ceph RGW here,
//     scripts/ceph-s3.sh), in the same run; the object store's lag is that of the newest point in
//     the bucket's catalog (the points a lost gateway machine keeps). Target: p99 <= 2 s.
import { execFileSync, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { gatewayClientFor, lagSeconds } from '../dist/bench/bench-api.js';
import { bin, cpuTicks, freePort, needCommand, say, startCephBucket } from './lib.mjs';
import { cpuSplit } from './rpo-cpu.mjs';
import { loadRig } from './rpo-load.mjs';
import { bucketLag, uploadSummary } from './rpo-object-store.mjs';
import { pct, printObjectStore, printTrackers } from './rpo-report.mjs';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    rate: { type: 'string', default: '20m' },
    'block-size': { type: 'string', default: '16KiB' },
    json: { type: 'boolean', default: false },
    smoke: { type: 'boolean', default: false },
    'keep-logs': { type: 'string' }, // a folder: each run's agent and gateway logs are written there
    store: { type: 'string' },
  },
});
if (args.store !== undefined && args.store !== 's3') {
  say(`bench:rpo: --store ${args.store} is not known; use --store s3 (or leave it out)`);
  process.exit(2);
}
const SMOKE = args.smoke;
const SECONDS = SMOKE ? 3 : Number(args.seconds);
const RATE = SMOKE ? '4m' : args.rate;
const IMAGE = SMOKE ? '128M' : '1G';
const FIO_FILE = SMOKE ? '32m' : '512m';
const need = (cmd, pkg) => needCommand('bench:rpo', cmd, pkg);
if (process.getuid?.() !== 0) {
  say('bench:rpo: needs root (loop devices, mount, fsfreeze, tracefs)');
  process.exit(2);
}
need('fio', 'fio');
need('rsync', 'rsync');
need('mkfs.ext4', 'e2fsprogs');

const work = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'lifeboat-rpo-'));
const undo = [];
const sh = (cmd, a) => execFileSync(cmd, a, { encoding: 'utf8' }).trim();

const TICK = Number(sh('getconf', ['CLK_TCK']));

let tracefsPath;
function tracefs() {
  tracefsPath ??= findOrMountTracefs();
  return tracefsPath;
}

function findOrMountTracefs() {
  for (const p of ['/sys/kernel/tracing', '/sys/kernel/debug/tracing']) {
    try {
      readFileSync(join(p, 'instances', '..', 'trace_clock'));
      return p;
    } catch {
      // not mounted there: try the next place, then mount a private one
    }
  }
  const mnt = join(work, 'tracefs');
  mkdirSync(mnt);
  sh('mount', ['-t', 'tracefs', 'nodev', mnt]);
  undo.push(() => sh('umount', [mnt]));
  return mnt;
}

const { volume, fio } = loadRig({ work, undo, image: IMAGE, fioFile: FIO_FILE, rate: RATE });

/**
 * One replicated volume under fio for `seconds`. With `profileDir`, the agent runs under V8's
 * CPU profiler (--cpu-prof) and stops gracefully at the end, so the profile is written there.
 */
async function lifeboat(tracker, { seconds = SECONDS, profileDir, s3 } = {}) {
  const name = profileDir ? `${tracker}-profiled` : s3 ? `${tracker}-s3` : tracker;
  const vol = volume(`lb-${name}`);
  const home = join(work, `home-${name}`);
  const port = await freePort();
  const prefix = `rpo-${Date.now()}`;
  sh(process.execPath, [
    bin,
    '--home',
    home,
    'init',
    '--gateway',
    `127.0.0.1:${port}`,
    ...(s3 ? ['--store', `s3://${s3.bucket}/${prefix}`] : []),
  ]);
  sh(process.execPath, [
    bin,
    '--home',
    home,
    'app',
    'add',
    'bench',
    '--volume',
    `data=${vol.device}`,
    '--fsfreeze',
    vol.mount,
    '--block-size',
    args['block-size'],
  ]);
  const env = { ...process.env, ...s3?.env, DR_LOG_LEVEL: 'info', DR_TRACEFS: tracefs() };
  const gateway = spawn(process.execPath, [bin, '--home', home, 'gateway'], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  undo.push(() => gateway.kill('SIGKILL'));
  // With the object store, each commit's upload: its steps' times, to tell where the lag goes.
  const uploads = [];
  let gwBuf = '';
  // Its log (stderr) is read to the end: a full pipe would stall the gateway's synchronous log.
  gateway.stderr.on('data', (c) => {
    gwBuf += c;
    for (let nl = gwBuf.indexOf('\n'); nl >= 0; nl = gwBuf.indexOf('\n')) {
      const line = gwBuf.slice(0, nl);
      gwBuf = gwBuf.slice(nl + 1);
      if (!line.includes('point uploaded to the bucket')) continue;
      try {
        uploads.push(JSON.parse(line));
      } catch {
        // not a log line
      }
    }
  });
  await new Promise((resolve) =>
    gateway.stdout.on('data', (c) => String(c).includes('listening') && resolve()),
  );
  const agent = spawn(
    process.execPath,
    [
      ...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []),
      bin,
      '--home',
      home,
      'agent',
      '--app',
      'bench',
      '--tracker',
      tracker,
      '--interval',
      '1s',
    ],
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  undo.push(() => agent.kill('SIGKILL'));
  const freezes = [];
  const splits = [];
  let committed = 0;
  let buf = '';
  if (args['keep-logs']) {
    mkdirSync(args['keep-logs'], { recursive: true });
    for (const [who, child] of [
      ['agent', agent],
      ['gateway', gateway],
    ])
      child.stderr.pipe(createWriteStream(join(args['keep-logs'], `${name}-${who}.log`)));
  }
  agent.stderr.on('data', (c) => {
    buf += c;
    let nl = buf.indexOf('\n');
    while (nl >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      nl = buf.indexOf('\n');
      try {
        const j = JSON.parse(line);
        if (j.msg === 'recovery point committed') {
          committed++;
          if (typeof j.freezeMs === 'number') freezes.push(j.freezeMs);
          if (j.freezeSplit) splits.push(j.freezeSplit);
        }
      } catch {
        // not a log line
      }
    }
  });
  const client = gatewayClientFor(home, port);
  // The initial sync and a first continuous cut.
  while (committed < 2) {
    if (agent.exitCode !== null) throw new Error(`the ${tracker} agent exited ${agent.exitCode}`);
    await sleep(100);
  }
  freezes.length = 0;
  splits.length = 0;
  uploads.length = 0;
  const load = fio(vol.mount, seconds);
  const t0 = Date.now();
  const c0 = cpuTicks(agent.pid);
  // Where else the CPU goes: the gateway, and with the object store radosgw and the OSD.
  const others = { gateway: gateway.pid, ...(s3 ? s3.cephPids() : {}) };
  const o0 = Object.fromEntries(Object.entries(others).map(([k, pid]) => [k, cpuTicks(pid).own]));
  const lags = [];
  while (Date.now() - t0 < seconds * 1000) {
    await sleep(1000);
    const lag = s3 ? await s3.lag(prefix) : await lagSeconds(client, 'bench');
    if (lag !== undefined) lags.push(lag);
  }
  const c1 = cpuTicks(agent.pid);
  const secs = (Date.now() - t0) / 1000;
  const otherCpuPercent = Object.fromEntries(
    Object.entries(others).map(([k, pid]) => [
      k,
      Math.round(((cpuTicks(pid).own - o0[k]) / TICK / secs) * 100),
    ]),
  );
  const cpu = ((c1.own - c0.own) / TICK / secs) * 100;
  const cpuWithHelpers = ((c1.all - c0.all) / TICK / secs) * 100;
  await new Promise((r) => (load.exitCode !== null ? r() : load.once('exit', r)));
  const [last] = await client.status('bench');
  client.close();
  const agentExit = new Promise((r) => (agent.exitCode !== null ? r() : agent.once('exit', r)));
  agent.kill('SIGTERM');
  // It writes the profile at exit, and its trace instance must be gone before tracefs unmounts.
  await Promise.race([agentExit, sleep(60_000)]);
  gateway.kill('SIGTERM');
  return {
    tracker,
    trackerSeen: last?.trackers?.data?.kind,
    lag: { p50: pct(lags, 50), p99: pct(lags, 99), max: Math.max(...lags) },
    freezeMs: { p50: pct(freezes, 50), p99: pct(freezes, 99), cuts: freezes.length },
    freezeSplitMs: Object.fromEntries(
      ['enterMs', 'markerMs', 'readMs', 'thawMs'].map((k) => {
        const xs = splits.map((x) => x[k]);
        return [k, { p50: pct(xs, 50), p99: pct(xs, 99) }];
      }),
    ),
    ...(s3 ? { uploads: uploadSummary(uploads) } : {}),
    agentCpuPercent: cpu,
    otherCpuPercent,
    agentCpuWithHelpersPercent: cpuWithHelpers,
  };
}

async function rsyncLoop() {
  const vol = volume('rsync');
  const dst = join(work, 'rsync-copy.img');
  sh('rsync', ['--inplace', vol.image, dst]);
  // --ignore-times: writes through the loop device do not move the image's mtime, so rsync's quick check would skip it.
  const load = fio(vol.mount, SECONDS);
  const t0 = Date.now();
  let lastStart = Date.now();
  let lastDone = t0; // the copy holds the data as of the start of the last finished cycle
  const cycles = [];
  const lags = [];
  const sampler = setInterval(() => lags.push((Date.now() - lastDone) / 1000), 1000);
  while (Date.now() - t0 < SECONDS * 1000) {
    lastStart = Date.now();
    await new Promise((r) =>
      spawn('rsync', ['--inplace', '--no-whole-file', '--ignore-times', vol.image, dst], {
        stdio: 'ignore',
      }).once('exit', r),
    );
    cycles.push((Date.now() - lastStart) / 1000);
    lastDone = lastStart;
  }
  clearInterval(sampler);
  await new Promise((r) => (load.exitCode !== null ? r() : load.once('exit', r)));
  return {
    cycle: { p50: pct(cycles, 50), max: Math.max(...cycles) },
    lag: { p50: pct(lags, 50), p99: pct(lags, 99), max: Math.max(...lags) },
  };
}

/** `--store s3`: the trace agent into the folder store, then into the object store. */
async function objectStoreRun() {
  const cephDir = join(work, 'ceph');
  const ceph = await startCephBucket(cephDir, 'rpo');
  undo.push(() => ceph.down());
  const s3 = {
    env: ceph.env,
    bucket: 'rpo',
    lag: await bucketLag(ceph.env, 'rpo', undo),
    cephPids: () => ({
      radosgw: Number(readFileSync(join(cephDir, 'run', 'client.rgw.a.pid'), 'utf8')),
      osd: Number(readFileSync(join(cephDir, 'run', 'osd.0.pid'), 'utf8')),
    }),
  };
  const local = await lifeboat('trace');
  const objects = await lifeboat('trace', { s3 });
  const result = {
    date: new Date().toISOString(),
    loadavg: loadavg().map((x) => Number(x.toFixed(2))),
    seconds: SECONDS,
    rate: RATE,
    local,
    s3: objects,
    ratioP99: objects.lag.p99 / local.lag.p99,
  };
  if (args.json) console.log(JSON.stringify(result, null, 2));
  else printObjectStore(result, { blockSize: args['block-size'] });
}

try {
  tracefs();
} catch (err) {
  say(
    `bench:rpo: no tracefs to trace with (${err.message}). To resolve, run as root where tracefs can be mounted (mount -t tracefs nodev /sys/kernel/tracing)`,
  );
  rmSync(work, { recursive: true, force: true });
  process.exit(2);
}
try {
  say(
    `bench:rpo: ${SECONDS} s of fio random writes at ${RATE}B/s on a ${IMAGE} ext4 (work dir ${work})`,
  );
  if (args.store === 's3') {
    await objectStoreRun();
  } else {
    const trace = await lifeboat('trace');
    // The same again, shorter, under the CPU profiler (its own run: profiling costs CPU too).
    const profileDir = join(work, 'profile');
    mkdirSync(profileDir);
    const profiledSeconds = Math.max(3, Math.round(SECONDS / 3));
    const profiled = await lifeboat('trace', { seconds: profiledSeconds, profileDir });
    const split = cpuSplit(profileDir);
    const scan = await lifeboat('scan');
    const rsync = await rsyncLoop();
    const result = {
      date: new Date().toISOString(),
      seconds: SECONDS,
      rate: RATE,
      trace,
      /** The profiled trace run: its CPU, and the shares of it by kind of work. */
      traceProfiled: { ...profiled, cpuSplit: split },
      scan,
      rsync,
    };
    if (args.json) console.log(JSON.stringify(result, null, 2));
    else printTrackers(result, { blockSize: args['block-size'], profiledSeconds });
  }
} finally {
  for (const fn of undo.reverse()) {
    try {
      fn();
    } catch (err) {
      say(`cleanup: ${err.message}`);
    }
  }
  rmSync(work, { recursive: true, force: true });
}
