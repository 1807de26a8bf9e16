#!/usr/bin/env node
// Benchmark: hydration of an on-demand volume against a full restore of the same point, in this
// process (`npm run bench:hydrate`). A point of random data (1 GiB by default) from a loopback
// gateway (its own process); trials interleaved so the machine's load weighs on each alike:
//   - restore: restoreVolume (what `dr restore` and a drill's full materialisation run);
//   - hydrate: OnDemandVolume.open + hydrate() (what an instant recovery copies behind the server).
// Both with the same ranges x worker threads (recovery.restoreParallel/-Workers, the machine's
// default unless --parallel/--workers). The figure robust to load is CPU seconds per GiB (this
// process and its threads, and the gateway); wall MiB/s is printed beside it.
//   node bench/hydrate.mjs [--size-mib 1024] [--trials 3] [--parallel R] [--workers W] [--smoke] [--json]
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { bin, cpuTicks, drSync, freePort, root, say, startProcess } from './lib.mjs';

const { values: args } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '1024' },
    trials: { type: 'string', default: '3' },
    parallel: { type: 'string' },
    workers: { type: 'string' },
    json: { type: 'boolean', default: false },
    smoke: { type: 'boolean', default: false },
  },
});
const SIZE = (args.smoke ? 32 : Number(args['size-mib'])) * 1024 * 1024;
const TRIALS = args.smoke ? 1 : Math.max(1, Number(args.trials));
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

if (!existsSync(join(root, 'dist/cli/main.js'))) {
  say('bench: build first (npm run build)');
  process.exit(2);
}
const dist = (p) => import(join(root, 'dist', p));
const TICK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Runs `fn` and returns its wall seconds and CPU seconds here (every thread) and in the gateway. */
async function measured(gatewayPid, fn) {
  const g0 = cpuTicks(gatewayPid).own;
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await fn();
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(c0);
  return {
    s,
    cpu: (c.user + c.system) / 1e6,
    sys: c.system / 1e6,
    gatewayCpu: (cpuTicks(gatewayPid).own - g0) / TICK,
  };
}

async function main() {
  const work = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'lifeboat-hydrate-'));
  const mine = [];
  try {
    say(`bench: writing ${SIZE / MiB} MiB of random data`);
    const src = join(work, 'volume.img');
    const fd = openSync(src, 'w');
    for (let o = 0; o < SIZE; o += 8 * MiB) writeSync(fd, randomBytes(8 * MiB), 0, 8 * MiB, o);
    closeSync(fd);
    const home = join(work, 'home');
    drSync(['--home', home, 'init', '--gateway', `127.0.0.1:${await freePort()}`]);
    drSync(['--home', home, 'app', 'add', 'bench', '--volume', `data=${src}`]);
    const env = { ...process.env, DR_LOG_LEVEL: 'warn' };
    const gateway = startProcess(
      mine,
      process.execPath,
      [bin, '--home', home, 'gateway'],
      env,
      'gateway',
    );
    await gateway.waitFor(/gateway listening/);
    drSync(['--home', home, 'agent', '--app', 'bench', '--once', '--json']);

    const { readConfig } = await dist('core/config.js');
    const { gatewayClient, loadKek } = await dist('cli/connect.js');
    const { restoreVolume } = await dist('replicator/recovery/restore-volume.js');
    const { OnDemandVolume } = await dist('replicator/recovery/on-demand-volume.js');
    const { parallelismOf } = await dist('replicator/recovery/read-parallelism.js');
    const config = await readConfig(home, process.env);
    const parallel = parallelismOf({
      restoreParallel: args.parallel ? Number(args.parallel) : config.recovery.restoreParallel,
      restoreWorkers: args.workers ? Number(args.workers) : config.recovery.restoreWorkers,
    });
    const client = gatewayClient(config);
    const kek = await loadKek(config);
    const point = await client.point('bench', 'latest');
    const o = { client, kek, app: 'bench', point, volume: 'data', parallel };
    const runs = { restore: [], hydrate: [] };
    /** CPU seconds of OnDemandVolume.open (block MACs fetched and checked), part of hydrate's. */
    const openCpu = [];
    try {
      for (let i = 0; i < TRIALS; i++) {
        const full = join(work, 'full.img');
        const local = join(work, 'hydrated.local');
        const trial = {
          restore: () =>
            measured(gateway.child.pid, () =>
              restoreVolume({ ...o, to: full, force: true, durable: false }),
            ),
          hydrate: () =>
            measured(gateway.child.pid, async () => {
              const c0 = process.cpuUsage();
              const v = await OnDemandVolume.open({ ...o, path: local });
              const c = process.cpuUsage(c0);
              openCpu.push((c.user + c.system) / 1e6);
              try {
                await v.hydrate();
              } finally {
                await v.close();
              }
            }),
        };
        // Which goes first alternates: neither always meets the other's page cache.
        for (const k of i % 2 ? ['hydrate', 'restore'] : ['restore', 'hydrate']) {
          execFileSync('sync');
          runs[k].push(await trial[k]());
        }
        // The hydrated copy must be the full restore, byte for byte (checked once).
        if (i === 0 && spawnSync('cmp', ['-s', full, local]).status !== 0) {
          throw new Error('the hydrated copy differs from the full restore');
        }
        rmSync(full, { force: true });
        rmSync(local, { force: true });
        for (const k of ['restore', 'hydrate']) {
          const r = runs[k].at(-1);
          say(
            `bench: ${k}, trial ${i + 1}: ${r.s.toFixed(2)} s, cpu here ${r.cpu.toFixed(2)} s (sys ${r.sys.toFixed(2)}), gateway ${r.gatewayCpu.toFixed(2)} s`,
          );
        }
      }
    } finally {
      client.close();
    }
    const perGiB = (x) => (x * GiB) / SIZE;
    const sum = (k) => {
      const r = runs[k];
      const s = median(r.map((x) => x.s));
      return {
        seconds: s,
        MiBps: SIZE / MiB / s,
        cpuPerGiB: perGiB(median(r.map((x) => x.cpu))),
        gatewayCpuPerGiB: perGiB(median(r.map((x) => x.gatewayCpu))),
      };
    };
    const restore = sum('restore');
    const hydrate = sum('hydrate');
    const result = {
      sizeMiB: SIZE / MiB,
      trials: TRIALS,
      parallel,
      restore,
      hydrate,
      openCpuPerGiB: perGiB(median(openCpu)),
      cpuRatio: hydrate.cpuPerGiB / restore.cpuPerGiB,
      throughputRatio: hydrate.MiBps / restore.MiBps,
      loadavg: loadavg().map((x) => Math.round(x * 100) / 100),
      date: new Date().toISOString(),
    };
    if (args.json) console.log(JSON.stringify(result));
    else {
      console.log(
        `${result.sizeMiB} MiB random, ${parallel.ranges} ranges x ${parallel.workers} workers, median of ${TRIALS}:`,
      );
      for (const [k, r] of [
        ['full restore', restore],
        ['hydration', hydrate],
      ]) {
        console.log(
          `  ${k}: ${r.seconds.toFixed(2)} s, ${r.MiBps.toFixed(0)} MiB/s; cpu ${r.cpuPerGiB.toFixed(2)} s/GiB here, ${r.gatewayCpuPerGiB.toFixed(2)} s/GiB gateway`,
        );
      }
      console.log(
        `  of which opening the volume (block MACs): ${result.openCpuPerGiB.toFixed(2)} s/GiB`,
      );
      console.log(
        `hydration / full restore: throughput ${result.throughputRatio.toFixed(2)}x (target >= 1x), cpu per GiB ${result.cpuRatio.toFixed(2)}x`,
      );
      console.log(`load average ${result.loadavg.join(' ')} at ${result.date}`);
    }
  } finally {
    for (const c of mine) c.kill('SIGTERM');
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
