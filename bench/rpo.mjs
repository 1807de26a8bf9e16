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
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  createWriteStream,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { gatewayClientFor, lagSeconds } from '../dist/bench/bench-api.js';
import {
  bin,
  cpuTicks,
  freePort,
  needCommand,
  pct as percentile,
  s3ClientFor,
  say,
  startCephBucket,
} from './lib.mjs';

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

const pct = (xs, p) => (xs.length === 0 ? Number.NaN : percentile(xs, p));
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

// Fresh data in every write and fresh offsets in every run, so no block repeats one the gateway
// holds (it would travel as a reference): by default fio seeds alike each run (randrepeat=1) and
// reuses one buffer, which only its default scramble_buffers changes a little per write.
const FRESH = ['--refill_buffers', '--randrepeat=0'];

/** A fresh 1 GiB (smoke: 128 MiB) ext4 on a loop device with a fio data file laid out. */
function volume(name) {
  const image = join(work, `${name}.img`);
  sh('truncate', ['-s', IMAGE, image]);
  const device = sh('losetup', ['--find', '--show', image]);
  undo.push(() => sh('losetup', ['-d', device]));
  sh('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', device]);
  const mount = join(work, `${name}-mnt`);
  mkdirSync(mount);
  sh('mount', [device, mount]);
  undo.push(() => {
    spawnSync('fsfreeze', ['-u', mount]);
    sh('umount', ['-l', mount]);
  });
  sh('fio', [
    '--name=layout',
    `--filename=${join(mount, 'fio.dat')}`,
    `--size=${FIO_FILE}`,
    '--rw=write',
    '--bs=1m',
    '--direct=1',
    ...FRESH,
    '--output=/dev/null',
  ]);
  return { image, device, mount };
}

function fio(mount, seconds) {
  return spawn(
    'fio',
    [
      '--name=load',
      `--filename=${join(mount, 'fio.dat')}`,
      `--size=${FIO_FILE}`,
      '--rw=randwrite',
      '--bssplit=4k/50:64k/50',
      `--rate=${RATE}`,
      '--direct=1',
      '--ioengine=psync',
      '--time_based',
      `--runtime=${seconds}`,
      ...FRESH,
      '--output=/dev/null',
    ],
    { stdio: 'ignore' },
  );
}

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

/** Where an agent's CPU went, from the first frame (leaf upwards) that a rule names. */
const CPU_RULES = [
  ['gc', (fr) => fr.functionName === '(garbage collector)'],
  ['logging', (fr) => /\/node_modules\/(pino|sonic-boom|thread-stream)\//.test(fr.url)],
  ['hashing', (fr) => fr.url.endsWith('/crypto/volume-key.js')],
  ['sealing', (fr) => fr.url.endsWith('/crypto/block-cipher.js')],
  ['tracing', (fr) => /\/capture\/(trace-tracker|tracefs|dirty-bitmap)\.js$/.test(fr.url)],
  ['reading', (fr) => /\/capture\/(read-blocks|volume-file|scan-tracker)\.js$/.test(fr.url)],
  [
    'shipping',
    (fr) =>
      /\/(agent\/batch-shipper|transport\/(batch-codec|gateway-client))\.js$/.test(fr.url) ||
      /^node:(_tls|_http|https|net|internal\/(tls|http|stream_base))/.test(fr.url),
  ],
];

/** Shares of the agent's busy samples by kind of work, from the .cpuprofile in `dir`. */
function cpuSplit(dir) {
  const file = readdirSync(dir).find((n) => n.endsWith('.cpuprofile'));
  if (!file) return undefined;
  const prof = JSON.parse(readFileSync(join(dir, file), 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const kindOf = new Map();
  const kind = (id) => {
    if (kindOf.has(id)) return kindOf.get(id);
    const fr = byId.get(id).callFrame;
    let k;
    if (fr.functionName === '(idle)') k = 'idle';
    else k = CPU_RULES.find(([, test]) => test(fr))?.[0];
    k ??= parent.has(id) ? kind(parent.get(id)) : 'other';
    kindOf.set(id, k);
    return k;
  };
  const us = {};
  const otherLeaves = new Map();
  let busy = 0;
  prof.samples.forEach((id, i) => {
    const k = kind(id);
    if (k === 'idle') return;
    const dt = prof.timeDeltas[i] ?? 0;
    us[k] = (us[k] ?? 0) + dt;
    busy += dt;
    if (k === 'other') {
      const fr = byId.get(id).callFrame;
      const at = `${fr.functionName || '(anonymous)'} ${fr.url.split('/').slice(-2).join('/')}`;
      otherLeaves.set(at, (otherLeaves.get(at) ?? 0) + dt);
    }
  });
  const kinds = [...CPU_RULES.map(([k]) => k), 'other'];
  // (program) is V8 and native work no JavaScript frame owns: part of "other".
  const shares = Object.fromEntries(kinds.map((k) => [k, busy > 0 ? (us[k] ?? 0) / busy : 0]));
  /** The functions (leaf frames) that most of "other" was spent in, as shares of all busy time. */
  const otherTop = [...otherLeaves]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 8)
    .map(([at, t]) => ({ at, share: t / busy }));
  return { ...shares, otherTop };
}

/**
 * The newest consistent point's age in the bucket's catalog: what a gateway on a new machine
 * would serve. The agent's changes never stop under fio, so no "unchanged since" applies.
 */
async function bucketLag(env, bucket) {
  const { GetObjectCommand } = await import('@aws-sdk/client-s3');
  const client = await s3ClientFor(env);
  undo.push(() => client.destroy());
  return async (prefix) => {
    try {
      const out = await client.send(
        new GetObjectCommand({ Bucket: bucket, Key: `${prefix}/apps/bench/catalog.json` }),
      );
      const catalog = JSON.parse(await out.Body.transformToString());
      const last = catalog.points.findLast((p) => p.label !== 'fuzzy');
      return last ? Math.max(0, (Date.now() - Date.parse(last.time)) / 1000) : undefined;
    } catch (err) {
      if (err.$metadata?.httpStatusCode === 404) return undefined; // no point uploaded yet
      throw err;
    }
  };
}

/** p50/p99 of each step of the commits' uploads (gateway log lines 'point uploaded to the bucket'). */
function uploadSummary(lines) {
  const keys = ['uploadMs', 'segmentMs', 'segmentBytes', 'indexMs', 'indexBytes', 'catalogMs'];
  return {
    commits: lines.length,
    ...Object.fromEntries(
      keys.map((k) => {
        const xs = lines.map((l) => l[k]).filter((x) => typeof x === 'number');
        return [k, { p50: pct(xs, 50), p99: pct(xs, 99) }];
      }),
    ),
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
    lag: await bucketLag(ceph.env, 'rpo'),
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
  else {
    console.log(
      `RPO under ${RATE}B/s random writes for ${SECONDS} s, ${args['block-size']} blocks, trace tracker (lag sampled every second; load ${result.loadavg.join(' ')})`,
    );
    for (const [what, r] of [
      ['folder store', local],
      ['object store (age of the newest point in the bucket)', objects],
    ]) {
      console.log(
        `${what}: lag p50 ${f(r.lag.p50)} s, p99 ${f(r.lag.p99)} s, max ${f(r.lag.max)} s | freeze p99 ${f(r.freezeMs.p99)} ms over ${r.freezeMs.cuts} cuts | agent CPU ${f(r.agentCpuPercent)} % | ${Object.entries(
          r.otherCpuPercent,
        )
          .map(([k, v]) => `${k} ${v} %`)
          .join(', ')}`,
      );
    }
    const u = objects.uploads;
    const pp = (k, div = 1) => `${f(u[k].p50 / div)} / ${f(u[k].p99 / div)}`;
    console.log(
      `object store commits: ${u.commits} | upload ms p50/p99 ${pp('uploadMs')} | segments ms ${pp('segmentMs')} (MiB ${pp('segmentBytes', 2 ** 20)}) | indexes ms ${pp('indexMs')} (KiB ${pp('indexBytes', 1024)}) | catalog ms ${pp('catalogMs')}`,
    );
    console.log(
      `ratio object / folder store (p99 lag): ${f(result.ratioP99)}x | target with the object store: p99 lag <= 2 s`,
    );
  }
}

const f = (n) => (Number.isFinite(n) ? n.toFixed(2) : '-');
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
    const profiled = await lifeboat('trace', {
      seconds: Math.max(3, Math.round(SECONDS / 3)),
      profileDir,
    });
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
    else {
      console.log(
        `RPO under ${RATE}B/s random writes for ${SECONDS} s, ${args['block-size']} blocks (lag sampled every second)`,
      );
      for (const r of [trace, scan]) {
        console.log(
          `lifeboat ${r.tracker.padEnd(5)} (seen ${r.trackerSeen}): lag p50 ${f(r.lag.p50)} s, p99 ${f(r.lag.p99)} s, max ${f(r.lag.max)} s | freeze p50 ${f(r.freezeMs.p50)} ms, p99 ${f(r.freezeMs.p99)} ms over ${r.freezeMs.cuts} cuts | agent CPU ${f(r.agentCpuPercent)} % of a core (${f(r.agentCpuWithHelpersPercent)} % with its freeze helpers)`,
        );
        const x = r.freezeSplitMs;
        const pp = (k) => `${f(x[k].p50)} / ${f(x[k].p99)} ms`;
        console.log(
          `  ${r.tracker} freeze split, p50 / p99: fsfreeze -f ${pp('enterMs')} (before the freeze), trace marker ${pp('markerMs')}, dirty blocks ${pp('readMs')}, fsfreeze -u ${pp('thawMs')}`,
        );
      }
      const share = (k) => (split ? `${k} ${f(split[k] * profiled.agentCpuPercent)} %` : `${k} -`);
      console.log(
        `  trace agent CPU split (a profiled ${Math.max(3, Math.round(SECONDS / 3))} s run at ${f(profiled.agentCpuPercent)} % of a core): ${['hashing', 'sealing', 'tracing', 'reading', 'shipping', 'logging', 'gc', 'other'].map(share).join(', ')} (% of a core)`,
      );
      console.log(
        `rsync loop: cycle p50 ${f(rsync.cycle.p50)} s, max ${f(rsync.cycle.max)} s | lag p50 ${f(rsync.lag.p50)} s, p99 ${f(rsync.lag.p99)} s, max ${f(rsync.lag.max)} s`,
      );
      console.log(
        `ratios to rsync (p99 lag): trace ${f(trace.lag.p99 / rsync.lag.p99)}x, scan ${f(scan.lag.p99 / rsync.lag.p99)}x`,
      );
      console.log(
        'targets with trace: p99 lag <= 2 s, max <= 5 s, p99 freeze <= 50 ms, agent CPU <= 25 %',
      );
    }
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
