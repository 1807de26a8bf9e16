#!/usr/bin/env node
// Benchmark: does the first sync cost in proportion to the data, not the disk?
// Volumes of 1, 4, 16 and 64 GiB: sparse image files each holding the same random data spread
// over the volume, and ext4 on loop devices (root) holding the same real files copied from /usr.
// For each: first sync and idle rescan (`dr agent --once --tracker scan`), agent and gateway
// peak RSS, and the time of the hole walk / fsmap itself. Prints the 64 vs 4 GiB ratio against
// the target (<= 1.3x). Never part of `npm test`.
//   node bench/scale.mjs [--sizes 1,4,16,64] [--data-mib 2048] [--image-data-mib 64] [--kinds image,ext4] [--smoke] [--json]
//   --smoke: volumes of 64 and 256 MiB holding 4 MiB of images and 16 MiB of files: the same path in seconds.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { bin, freePort, needCommand, root, say } from './lib.mjs';

const { values: args } = parseArgs({
  options: {
    sizes: { type: 'string', default: '1,4,16,64' },
    'data-mib': { type: 'string', default: '2048' },
    'image-data-mib': { type: 'string', default: '64' },
    kinds: { type: 'string', default: 'image,ext4' },
    json: { type: 'boolean', default: false },
    smoke: { type: 'boolean', default: false },
  },
});
if (args.smoke) {
  args.sizes = '0.0625,0.25';
  args['data-mib'] = '16';
  args['image-data-mib'] = '4';
}
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const SIZES = args.sizes.split(',').map((s) => Number(s) * GiB);
const DATA = Number(args['data-mib']) * MiB;
const IMAGE_DATA = Number(args['image-data-mib']) * MiB;
const KINDS = args.kinds.split(',');

if (!existsSync(join(root, 'dist/cli/main.js'))) {
  say('bench: build first (npm run build)');
  process.exit(2);
}
needCommand('bench:scale', 'xfs_io', 'xfsprogs');
const { findZeroRanges } = await import('../dist/bench/bench-api.js');
const canLoop = process.getuid?.() === 0 && !spawnSync('losetup', ['--version']).error;
if (KINDS.includes('ext4') && !canLoop)
  say('bench:scale: ext4 rows skipped: loop devices and mounts need root and losetup');

const work = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'lifeboat-scale-'));
const cleanups = [];
const sh = (cmd, argv) => execFileSync(cmd, argv, { encoding: 'utf8' });

/** Peak resident set (VmHWM) of a running process, in bytes. */
function peakRss(pid) {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0; // the process has exited; the last sample stands
  }
}

/** Runs dr to completion, sampling its peak RSS; returns { ms, peak, stdout }. */
function timedDr(argv) {
  execFileSync('sync');
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(process.execPath, [bin, ...argv], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, DR_LOG_LEVEL: 'warn' },
    });
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
        reject(new Error(`dr ${argv.join(' ')} exited ${code}: ${stderr.slice(-2000)}`));
      else resolve({ ms, peak, stdout });
    });
  });
}

/** Real files from /usr, in a fixed order, adding up to at most `bytes` (the same set for every volume). */
function usrFiles(bytes) {
  const out = [];
  let total = 0;
  const walk = (dir) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) =>
        a.name < b.name ? -1 : 1,
      );
    } catch {
      return; // unreadable folder: skipped
    }
    for (const e of entries) {
      if (total >= bytes) return;
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        const size = statSync(p).size;
        if (total + size > bytes) continue; // too large for what is left: a smaller one may fit
        out.push(p);
        total += size;
      }
    }
  };
  for (const d of ['/usr/lib', '/usr/share', '/usr/bin', '/usr/libexec', '/usr/local']) walk(d);
  return { files: out, total };
}

/** A sparse image of `size` holding IMAGE_DATA of random data in 1 MiB pieces spread evenly. */
function sparseImage(path, size, data) {
  const fd = openSync(path, 'w');
  const pieces = Math.max(1, Math.floor(data.length / MiB));
  const stride = Math.floor(size / pieces / MiB) * MiB;
  for (let i = 0; i < pieces; i++)
    writeSync(fd, data.subarray(i * MiB, (i + 1) * MiB), 0, MiB, i * stride);
  closeSync(fd);
  execFileSync('truncate', ['-s', String(size), path]);
}

/** A loop device over a sparse image of `size`, with ext4 mounted and the files copied in. */
function ext4Volume(name, size, files) {
  const image = join(work, `${name}.img`);
  execFileSync('truncate', ['-s', String(size), image]);
  const device = sh('losetup', ['--find', '--show', image]).trim();
  cleanups.push(() => sh('losetup', ['-d', device]));
  sh('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', device]);
  const mount = join(work, `${name}-mnt`);
  mkdirSync(mount, { recursive: true });
  sh('mount', [device, mount]);
  cleanups.push(() => sh('umount', [mount]));
  for (const [i, f] of files.entries()) {
    const to = join(mount, 'usr', f.slice(5));
    mkdirSync(dirname(to), { recursive: true });
    try {
      copyFileSync(f, to);
    } catch {
      if (i === 0) throw new Error(`cannot copy ${f}`); // a file that vanished since the walk: skipped
    }
  }
  execFileSync('sync');
  return { path: device, mount, image };
}

/** One row: a fresh home and gateway, the first sync and an idle rescan. */
async function row(kind, size, volume) {
  const home = join(work, `home-${kind}-${size / GiB}`);
  const port = await freePort();
  const drq = (argv) => sh(process.execPath, [bin, '--home', home, ...argv]);
  drq(['init', '--gateway', `127.0.0.1:${port}`]);
  drq([
    'app',
    'add',
    'bench',
    '--volume',
    `data=${volume.path}`,
    ...(volume.mount ? ['--fsfreeze', volume.mount] : []),
  ]);
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
    const once = [
      '--home',
      home,
      'agent',
      '--app',
      'bench',
      '--once',
      '--json',
      '--tracker',
      'scan',
    ];
    const first = await timedDr(once);
    const idle = await timedDr(once);
    const isDevice = kind === 'ext4';
    const st = statSync(volume.path);
    const map = await findZeroRanges(
      { path: volume.path, isBlockDevice: isDevice, rdev: st.rdev },
      size,
    );
    gwPeak = Math.max(gwPeak, peakRss(gateway.pid));
    const f = JSON.parse(first.stdout);
    const r = {
      kind,
      sizeGiB: size / GiB,
      firstSyncMs: first.ms,
      firstBytesSent: f.bytesSent,
      idleRescanMs: idle.ms,
      agentPeak: Math.max(first.peak, idle.peak),
      gatewayPeak: gwPeak,
      walk: map.source,
      walkMs: map.ms,
      unusedBytes: map.zeroBytes,
    };
    say(
      `  ${kind} ${r.sizeGiB} GiB: first sync ${(r.firstSyncMs / 1000).toFixed(2)} s (${(r.firstBytesSent / MiB).toFixed(0)} MiB sent), ` +
        `idle rescan ${(r.idleRescanMs / 1000).toFixed(2)} s, agent ${(r.agentPeak / MiB).toFixed(0)} MiB, gateway ${(r.gatewayPeak / MiB).toFixed(0)} MiB; ` +
        `${map.source} walk ${r.walkMs.toFixed(0)} ms (${(r.unusedBytes / GiB).toFixed(2)} GiB unused)`,
    );
    return r;
  } finally {
    clearInterval(gwTimer);
    gateway.kill('SIGTERM');
    await new Promise((r) => gateway.once('exit', r));
    rmSync(home, { recursive: true, force: true });
  }
}

const rows = [];
try {
  say(
    `bench:scale in ${work}; load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  if (KINDS.includes('image')) {
    const data = randomBytes(IMAGE_DATA);
    for (const size of SIZES) {
      const path = join(work, `image-${size / GiB}.img`);
      sparseImage(path, size, data);
      rows.push(await row('image', size, { path }));
      rmSync(path, { force: true });
    }
  }
  if (KINDS.includes('ext4') && canLoop) {
    const { files, total } = usrFiles(DATA);
    say(`  ext4 volumes hold ${files.length} files from /usr, ${(total / MiB).toFixed(0)} MiB`);
    for (const size of SIZES) {
      if (total > size * 0.85) {
        say(
          `  ext4 ${size / GiB} GiB: skipped, ${(total / MiB).toFixed(0)} MiB of files do not fit`,
        );
        continue;
      }
      const at = cleanups.length;
      const v = ext4Volume(`ext4-${size / GiB}`, size, files);
      rows.push(await row('ext4', size, v));
      for (const fn of cleanups.splice(at).reverse()) fn();
      rmSync(v.image, { force: true });
    }
  }
  const ratio = (kind) => {
    const a = rows.find((r) => r.kind === kind && r.sizeGiB === 4);
    const b = rows.find((r) => r.kind === kind && r.sizeGiB === 64);
    return a && b ? b.firstSyncMs / a.firstSyncMs : undefined;
  };
  const spread = (kind, k) => {
    const xs = rows.filter((r) => r.kind === kind).map((r) => r[k]);
    return xs.length ? Math.max(...xs) / Math.min(...xs) : undefined;
  };
  for (const kind of KINDS) {
    const q = ratio(kind);
    if (q !== undefined)
      say(
        `  ${kind}: first sync 64 GiB / 4 GiB = ${q.toFixed(2)}x (target <= 1.3x: ${q <= 1.3 ? 'met' : 'MISSED'})`,
      );
  }
  for (const kind of KINDS) {
    if (spread(kind, 'agentPeak') === undefined) continue;
    say(
      `  ${kind}: peak RSS max/min over the sizes: agent ${spread(kind, 'agentPeak').toFixed(2)}x, gateway ${spread(kind, 'gatewayPeak').toFixed(2)}x (target <= 1.2x)`,
    );
  }
  const result = { date: new Date().toISOString(), load: loadavg(), rows };
  if (args.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
} finally {
  for (const fn of cleanups.reverse()) {
    try {
      fn();
    } catch (err) {
      say(`cleanup: ${err.message}`);
    }
  }
  rmSync(work, { recursive: true, force: true });
}
