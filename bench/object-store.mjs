#!/usr/bin/env node
// Benchmark: initial sync and one incremental cycle into the folder store and into the object store (Ceph RGW on this machine, scripts/ceph-s3.sh), in the same run.
//   node bench/object-store.mjs [--size-mib 256] [--change 0.05] [--json] [--keep-logs DIR] [--cpu-prof DIR]   (or npm run bench:replication -- --store s3)
//   Prints each cycle's time and the CPU seconds of the gateway, radosgw, the OSD and the agent; --cpu-prof writes each run's gateway V8 profile.
// Target (issue 24): the object store within 1.5x of the folder store for both. Never part of `npm test`.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  createWriteStream,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { bin, cpuTicks, drSync, freePort, rewriteBlocks, say, startCephBucket } from './lib.mjs';

const { values: args } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '256' },
    change: { type: 'string', default: '0.05' },
    json: { type: 'boolean', default: false },
    store: { type: 'string', default: 's3' }, // from `npm run bench:replication -- --store s3`
    'keep-logs': { type: 'string' }, // a folder: each run's gateway log (level info) is written there
    'cpu-prof': { type: 'string' }, // a folder: each run's gateway writes a V8 CPU profile there (node --cpu-prof)
  },
});
if (args.store !== 's3') {
  say(`bench: --store ${args.store} is not known; use --store s3`);
  process.exit(2);
}
const SIZE = Number(args['size-mib']) * 1024 * 1024;
const BLOCK = 64 * 1024;
const work = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'lifeboat-bench-s3-'));
const src = join(work, 'volume.img');

async function run(store, env) {
  const home = join(work, `home-${store}`);
  const init = ['--home', home, 'init', '--gateway', `127.0.0.1:${await freePort()}`];
  if (store === 's3') init.push('--store', `s3://bench/${Date.now()}`);
  drSync(init);
  drSync(['--home', home, 'app', 'add', 'bench', '--volume', `data=${src}`]);
  const prof = args['cpu-prof']
    ? [
        '--cpu-prof',
        '--cpu-prof-dir',
        args['cpu-prof'],
        '--cpu-prof-name',
        `gateway-${store}.cpuprofile`,
      ]
    : [];
  const gateway = spawn(process.execPath, [...prof, bin, '--home', home, 'gateway'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env, DR_LOG_LEVEL: args['keep-logs'] ? 'info' : 'warn' },
  });
  if (args['keep-logs']) {
    mkdirSync(args['keep-logs'], { recursive: true });
    gateway.stderr.pipe(createWriteStream(join(args['keep-logs'], `gateway-${store}.log`)));
  } else gateway.stderr.resume(); // a full pipe would stall the gateway's synchronous log
  try {
    await new Promise((resolve, reject) => {
      let out = '';
      gateway.stdout.on('data', (c) => {
        out += c;
        if (out.includes('gateway listening')) resolve();
      });
      gateway.on('exit', (code) => reject(new Error(`gateway exited ${code}`)));
    });
    // CPU seconds of each cycle: the gateway, radosgw and the OSD (idle during the folder run), and
    // the agent (this process's reaped children).
    const pids = { gateway: gateway.pid, ...cephPids() };
    const ticks = () => ({
      ...Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuTicks(pid).own])),
      agent: cpuTicks(process.pid).all - cpuTicks(process.pid).own,
    });
    const cycle = () => {
      execFileSync('sync');
      const before = ticks();
      const t = process.hrtime.bigint();
      const out = JSON.parse(
        drSync(['--home', home, 'agent', '--app', 'bench', '--once', '--json']),
      );
      const ms = Number(process.hrtime.bigint() - t) / 1e6;
      const after = ticks();
      const cpuSeconds = Object.fromEntries(
        Object.keys(after).map((k) => [k, (after[k] - before[k]) / TICK]),
      );
      return { ms, blocks: out.blocksSent, cpuSeconds };
    };
    const initial = cycle();
    rewriteBlocks(src, SIZE, Number(args.change), BLOCK);
    const incremental = cycle();
    return { initial, incremental };
  } finally {
    gateway.kill('SIGTERM');
    await new Promise((r) => gateway.once('exit', r));
  }
}

const cephDir = join(work, 'ceph');
const TICK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }));
const cephPids = () => ({
  radosgw: Number(readFileSync(join(cephDir, 'run', 'client.rgw.a.pid'), 'utf8')),
  osd: Number(readFileSync(join(cephDir, 'run', 'osd.0.pid'), 'utf8')),
});
let ceph;
try {
  say(`bench: starting Ceph under ${cephDir}`);
  ceph = await startCephBucket(cephDir, 'bench');
  const env = ceph.env;
  const data = Buffer.alloc(SIZE);
  for (let o = 0; o < SIZE; o += BLOCK) randomBytes(BLOCK).copy(data, o);
  writeSync(openSync(src, 'w'), data);
  const original = Buffer.from(data);
  const local = await run('local', {});
  writeSync(openSync(src, 'w'), original); // the same content and the same change for both
  const s3 = await run('s3', env);
  const fmt = (x) => x.toFixed(2);
  const result = {
    date: new Date().toISOString(),
    loadavg: loadavg().map((x) => Number(x.toFixed(2))),
    sizeMiB: SIZE / 1024 / 1024,
    local,
    s3,
    ratio: {
      initial: Number(fmt(s3.initial.ms / local.initial.ms)),
      incremental: Number(fmt(s3.incremental.ms / local.incremental.ms)),
    },
  };
  if (args.json) console.log(JSON.stringify(result, null, 2));
  else {
    console.log(
      `object store benchmark: ${result.sizeMiB} MiB random volume, Ceph RGW on 127.0.0.1 (one OSD), load ${result.loadavg.join(' ')}`,
    );
    console.log(
      `initial sync   folder ${fmt(local.initial.ms / 1000)} s | s3 ${fmt(s3.initial.ms / 1000)} s | ratio ${result.ratio.initial}x (target <= 1.5)`,
    );
    console.log(
      `incremental    folder ${fmt(local.incremental.ms / 1000)} s | s3 ${fmt(s3.incremental.ms / 1000)} s (${s3.incremental.blocks} blocks) | ratio ${result.ratio.incremental}x (target <= 1.5)`,
    );
    const cpu = (c) =>
      Object.entries(c.cpuSeconds)
        .map(([k, v]) => `${k} ${fmt(v)}`)
        .join(', ');
    for (const which of ['initial', 'incremental'])
      console.log(
        `CPU seconds, ${which}: folder run ${cpu(local[which])} | s3 run ${cpu(s3[which])}`,
      );
  }
} finally {
  ceph?.down();
  rmSync(work, { recursive: true, force: true });
}
