#!/usr/bin/env node
// Benchmark: initial sync and one incremental cycle into the folder store and into the object store (Ceph RGW on this machine, scripts/ceph-s3.sh), in the same run.
//   node bench/object-store.mjs [--size-mib 256] [--change 0.05] [--json]   (or npm run bench:replication -- --store s3)
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
  const gateway = spawn(process.execPath, [bin, '--home', home, 'gateway'], {
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
    const cycle = () => {
      execFileSync('sync');
      const t = process.hrtime.bigint();
      const out = JSON.parse(
        drSync(['--home', home, 'agent', '--app', 'bench', '--once', '--json']),
      );
      return { ms: Number(process.hrtime.bigint() - t) / 1e6, blocks: out.blocksSent };
    };
    // CPU seconds of the gateway, and of radosgw and the OSD (idle during the folder run).
    const pids = { gateway: gateway.pid, ...cephPids() };
    const t0 = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuTicks(pid).own]));
    const initial = cycle();
    rewriteBlocks(src, SIZE, Number(args.change), BLOCK);
    const incremental = cycle();
    const cpuSeconds = Object.fromEntries(
      Object.entries(pids).map(([k, pid]) => [k, (cpuTicks(pid).own - t0[k]) / TICK]),
    );
    return { initial, incremental, cpuSeconds };
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
    const cpu = (r) =>
      Object.entries(r.cpuSeconds)
        .map(([k, v]) => `${k} ${fmt(v)}`)
        .join(', ');
    console.log(`CPU seconds, both cycles: folder run ${cpu(local)} | s3 run ${cpu(s3)}`);
  }
} finally {
  ceph?.down();
  rmSync(work, { recursive: true, force: true });
}
