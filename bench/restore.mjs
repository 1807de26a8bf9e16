#!/usr/bin/env node
// Benchmark: full restore of a point of random data (1 GiB by default) from a loopback gateway,
// with the machine's own limits from the same run: the disk's direct write speed and
// AES-256-GCM decryption per core. Designs are compared in the same run, trials interleaved so
// the machine's load weighs on each alike: ranges in flight x worker threads (`dr restore
// --parallel R --workers W`), each with the CPU (user+sys) of the restorer and of the gateway.
// Then where the time goes: fetching alone, decrypting and checking alone, writing alone.
// Prints figures; never part of `npm test`.
//   node bench/restore.mjs [--size-mib 1024] [--trials 2] [--designs 1x0,4x0,2x1,4x2]
//                          [--streams sealed,tls] [--block-size 64KiB] [--smoke] [--json]
//   --block-size: the app's block size (dr's default, 64 KiB, without it).
//   --streams: how the records travel, compared in the same run: `sealed` (plain TCP after a
//   mutual-TLS request, the default) and `tls` (gateway.recordStreams: false); each design runs
//   with each, the gateway restarted between them.
//   --smoke: 32 MiB, one trial of two designs: the same path in seconds.
import { execFileSync, spawn } from 'node:child_process';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { open as openFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { bin, cpuTicks, drSync, freePort, needCommand, root, say } from './lib.mjs';

const { values: args } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '1024' },
    trials: { type: 'string', default: '2' },
    designs: { type: 'string', default: '1x0,2x0,4x0,1x1,2x1,2x2' },
    streams: { type: 'string', default: 'sealed,tls' },
    json: { type: 'boolean', default: false },
    smoke: { type: 'boolean', default: false },
    'block-size': { type: 'string' },
  },
});
const SIZE = (args.smoke ? 32 : Number(args['size-mib'])) * 1024 * 1024;
const TRIALS = args.smoke ? 1 : Math.max(1, Number(args.trials));
const STREAMS = args.streams.split(',');
for (const m of STREAMS) {
  if (m !== 'sealed' && m !== 'tls') {
    say(`bench: --streams ${args.streams}: each must be sealed or tls`);
    process.exit(2);
  }
}
const DESIGNS = (args.smoke ? '1x0,2x0' : args.designs).split(',').flatMap((d) => {
  const [ranges, workers] = d.split('x').map(Number);
  return STREAMS.map((stream) => ({
    ranges,
    workers,
    stream,
    name: `${ranges} range${ranges === 1 ? '' : 's'}, ${workers} worker${workers === 1 ? '' : 's'}, ${stream}`,
  }));
});

if (!existsSync(join(root, 'dist/cli/main.js'))) {
  say('bench: build first (npm run build)');
  process.exit(2);
}
needCommand('bench', 'dd', 'coreutils');

const work = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'lifeboat-restore-'));
const src = join(work, 'volume.img');
const MB = 1e6;

const TICK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
/** CPU seconds (user+sys) of a live process, or of this one's reaped children (`self`). */
function cpuOf(pid) {
  const t = cpuTicks(pid);
  return (pid === 'self' ? t.all - t.own : t.own) / TICK;
}

/** The disk's direct write speed where the images go: 1 GiB (or SIZE) in 4 MiB O_DIRECT writes, fsync'd. */
function directWriteSpeed() {
  const out = join(work, 'dd.img');
  const count = Math.max(1, Math.round(SIZE / (4 * 1024 * 1024)));
  const t0 = process.hrtime.bigint();
  execFileSync(
    'dd',
    ['if=/dev/zero', `of=${out}`, 'bs=4M', `count=${count}`, 'oflag=direct', 'conv=fsync'],
    {
      stdio: 'ignore',
    },
  );
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  rmSync(out, { force: true });
  return (count * 4 * 1024 * 1024) / s / MB;
}

/** `dr --version`, `dr points` (which read dr.yaml and ask the gateway): the start-up a restore carries, median wall and CPU of 5. */
function startUp(home) {
  const run = (argv) => {
    const xs = [];
    for (let i = 0; i < 5; i++) {
      const c0 = cpuOf('self');
      const t0 = process.hrtime.bigint();
      drSync(argv);
      xs.push({ s: Number(process.hrtime.bigint() - t0) / 1e9, cpu: cpuOf('self') - c0 });
    }
    const mid = (k) => xs.map((x) => x[k]).sort((a, b) => a - b)[2];
    return { seconds: mid('s'), cpu: mid('cpu') };
  };
  return { version: run(['--version']), points: run(['--home', home, 'points', 'bench']) };
}

/** AES-256-GCM decryption of 64 KiB blocks on one core, MB/s. */
function gcmPerCore() {
  const key = randomBytes(32);
  const plain = randomBytes(64 * 1024);
  const nonce = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, nonce);
  const ct = Buffer.concat([c.update(plain), c.final()]);
  const tag = c.getAuthTag();
  let n = 0;
  const t0 = process.hrtime.bigint();
  while (n < 4096) {
    const d = createDecipheriv('aes-256-gcm', key, nonce);
    d.setAuthTag(tag);
    d.update(ct);
    d.final();
    n++;
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return (n * plain.length) / s / MB;
}

async function main() {
  say(`bench: writing ${SIZE / 1024 / 1024} MiB of random data`);
  const fd = openSync(src, 'w');
  for (let o = 0; o < SIZE; o += 8 * 1024 * 1024)
    writeSync(fd, randomBytes(8 * 1024 * 1024), 0, 8 * 1024 * 1024, o);
  closeSync(fd);
  const home = join(work, 'home');
  const port = await freePort();
  drSync(['--home', home, 'init', '--gateway', `127.0.0.1:${port}`]);
  drSync([
    ...['--home', home, 'app', 'add', 'bench', '--volume', `data=${src}`],
    ...(args['block-size'] ? ['--block-size', args['block-size']] : []),
  ]);
  const yaml = join(home, 'dr.yaml');
  const plainYaml = readFileSync(yaml, 'utf8');
  /** The gateway, restarted when the way records travel changes (dr.yaml's gateway.recordStreams). */
  let gateway;
  let gatewayStream;
  const startGateway = async (stream) => {
    if (gateway && gatewayStream === stream) return;
    if (gateway) {
      const g = gateway;
      await new Promise((resolve) => {
        g.once('exit', resolve);
        g.kill('SIGTERM');
      });
    }
    writeFileSync(
      yaml,
      stream === 'tls'
        ? plainYaml.replace(/^gateway:$/m, 'gateway:\n  recordStreams: false')
        : plainYaml,
    );
    gatewayStream = stream;
    gateway = spawn(process.execPath, [bin, '--home', home, 'gateway'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, DR_LOG_LEVEL: 'warn' },
    });
    const g = gateway;
    await new Promise((resolve, reject) => {
      let out = '';
      g.stdout.on('data', (c) => {
        out += c;
        if (out.includes('gateway listening')) resolve();
      });
      g.on('exit', (code) => reject(new Error(`gateway exited ${code}`)));
    });
  };
  try {
    await startGateway(STREAMS[0]);
    drSync(['--home', home, 'agent', '--app', 'bench', '--once', '--json']);
    const runs = new Map(DESIGNS.map((d) => [d.name, []]));
    for (let i = 0; i < TRIALS; i++) {
      for (const d of DESIGNS) {
        await startGateway(d.stream);
        const to = join(work, `restored-${i}.img`);
        execFileSync('sync');
        const g0 = cpuOf(gateway.pid);
        const c0 = cpuOf('self');
        const t0 = process.hrtime.bigint();
        drSync([
          '--home',
          home,
          'restore',
          'bench',
          '--point',
          'latest',
          '--allow-fuzzy',
          '--volume',
          'data',
          '--to',
          to,
          '--parallel',
          String(d.ranges),
          '--workers',
          String(d.workers),
        ]);
        const s = Number(process.hrtime.bigint() - t0) / 1e9;
        const run = { s, restorerCpu: cpuOf('self') - c0, gatewayCpu: cpuOf(gateway.pid) - g0 };
        runs.get(d.name).push(run);
        rmSync(to, { force: true });
        say(
          `bench: ${d.name}, trial ${i + 1}: ${s.toFixed(2)} s, cpu restorer ${run.restorerCpu.toFixed(2)} s, gateway ${run.gatewayCpu.toFixed(2)} s`,
        );
      }
    }
    const median = (xs) => {
      const s = [...xs].sort((a, b) => a - b);
      const m = s.length >> 1;
      return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
    };
    const designs = DESIGNS.map((d) => {
      const r = runs.get(d.name);
      const s = median(r.map((x) => x.s));
      return {
        ...d,
        seconds: s,
        best: Math.min(...r.map((x) => x.s)),
        MBps: SIZE / s / MB,
        restorerCpu: median(r.map((x) => x.restorerCpu)),
        gatewayCpu: median(r.map((x) => x.gatewayCpu)),
        cpuPerGiB: median(r.map((x) => x.restorerCpu + x.gatewayCpu)) * (1024 ** 3 / SIZE),
      };
    });
    await startGateway(STREAMS[0]);
    const phases = await whereTimeGoes(home, gateway.pid);
    const chosen = designs.reduce((a, b) => (b.seconds < a.seconds ? b : a));
    const result = {
      sizeMiB: SIZE / 1024 / 1024,
      designs,
      fastest: chosen.name,
      phases,
      restoreSeconds: { best: chosen.best, median: chosen.seconds },
      restoreMBps: chosen.MBps,
      diskDirectWriteMBps: directWriteSpeed(),
      gcmDecryptMBpsPerCore: gcmPerCore(),
      startUp: startUp(home),
      cores: (await import('node:os')).cpus().length,
      loadavg: loadavg().map((x) => Math.round(x * 100) / 100),
      date: new Date().toISOString(),
    };
    if (args.json) console.log(JSON.stringify(result));
    else {
      console.log(
        '| design | wall (median) | MB/s | cpu restorer | cpu gateway | cpu s per GiB, both |',
      );
      console.log('| --- | --- | --- | --- | --- | --- |');
      for (const d of designs) {
        console.log(
          `| ${d.name} | ${d.seconds.toFixed(2)} s | ${d.MBps.toFixed(0)} | ${d.restorerCpu.toFixed(2)} s | ${d.gatewayCpu.toFixed(2)} s | ${d.cpuPerGiB.toFixed(2)} |`,
        );
      }
      console.log(
        `full restore of ${result.sizeMiB} MiB random: ${chosen.seconds.toFixed(2)} s median (best ${chosen.best.toFixed(2)} s), ${chosen.MBps.toFixed(0)} MB/s, ${(chosen.MBps / 500).toFixed(2)}x the target of 500 MB/s (fastest design: ${chosen.name})`,
      );
      console.log(
        `machine limits, same run: disk direct write ${result.diskDirectWriteMBps.toFixed(0)} MB/s; AES-256-GCM decrypt ${result.gcmDecryptMBpsPerCore.toFixed(0)} MB/s per core x ${result.cores} cores`,
      );
      console.log(
        `where it goes, cpu seconds per GiB: fetch (${STREAMS[0]}) ${phases.fetch.restorerCpu.toFixed(2)} (gateway ${phases.fetch.gatewayCpu.toFixed(2)}), decrypt+check ${phases.open.cpu.toFixed(2)}, write ${phases.write.cpu.toFixed(2)}${phases.write.direct ? ' (O_DIRECT)' : ' (the page cache: no O_DIRECT here)'} against ${phases.writeBuffered.cpu.toFixed(2)} through the page cache; sum ${phases.sum.toFixed(2)} s over ${result.cores} cores: at best ${phases.bestMBps.toFixed(0)} MB/s were that work spread over every core`,
      );
      const su = result.startUp;
      console.log(
        `start-up in each restore: dr --version ${su.version.seconds.toFixed(2)} s wall (${su.version.cpu.toFixed(2)} s cpu), dr points ${su.points.seconds.toFixed(2)} s (${su.points.cpu.toFixed(2)} s cpu)`,
      );
      console.log(`load average ${result.loadavg.join(' ')} at ${result.date}`);
    }
  } finally {
    gateway?.kill('SIGTERM');
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Each phase alone, in this process, as CPU seconds per GiB: fetching every record (TLS into a
 * reused buffer, as a restore does), opening (authenticate, decrypt, MAC) records held in memory,
 * and writing plaintext in 4 MiB writev runs to a new file.
 */
async function whereTimeGoes(home, gatewayPid) {
  const dist = (p) => import(join(root, 'dist', p));
  const { readConfig } = await dist('core/config.js');
  const { gatewayClient, loadKek } = await dist('cli/connect.js');
  const { fetchRecordsInto } = await dist('replicator/transport/record-fetch.js');
  const { openBlock } = await dist('replicator/crypto/block-cipher.js');
  const { imageWriter, openDirect } = await dist('replicator/recovery/image-writer.js');
  const { volumeKeysOf } = await dist('replicator/crypto/volume-key.js');
  const config = await readConfig(home, process.env);
  const client = gatewayClient(config);
  const perGiB = (x, bytes) => (x * 1024 ** 3) / bytes;
  try {
    const kek = await loadKek(config);
    const point = await client.point('bench', 'latest');
    const info = point.volumeInfo[0];
    const keys = volumeKeysOf(kek, 'bench', info);
    // Fetch: the whole volume into one reused 4 MiB buffer, keeping the first 64 MiB of records.
    const slab = Buffer.allocUnsafe(4 * 1024 * 1024);
    const kept = [];
    let keptBytes = 0;
    let got = 0;
    const g0 = cpuOf(gatewayPid);
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    await fetchRecordsInto(
      client,
      { app: 'bench', point: point.id, volume: 'data', range: { from: 0, to: 2 ** 32 } },
      {
        space: () => slab,
        landed: (n) => {
          got += n;
          if (keptBytes < 64 * 1024 * 1024) {
            kept.push(Buffer.from(slab.subarray(0, n)));
            keptBytes += n;
          }
          return true;
        },
      },
    ).done;
    const fetchS = Number(process.hrtime.bigint() - t0) / 1e9;
    const fc = process.cpuUsage(c0);
    const fetch = {
      seconds: perGiB(fetchS, got),
      restorerCpu: perGiB((fc.user + fc.system) / 1e6, got),
      gatewayCpu: perGiB(cpuOf(gatewayPid) - g0, got),
    };
    // Open: the kept records, framed as the gateway sends them.
    const all = Buffer.concat(kept);
    const records = [];
    for (let o = 0; o + 16 <= all.length; ) {
      const len = all.readUInt32BE(o + 12);
      if (o + 16 + len > all.length) break;
      records.push({
        block: all.readUInt32BE(o),
        seq: Number(all.readBigUInt64BE(o + 4)),
        record: all.subarray(o + 16, o + 16 + len),
      });
      o += 16 + len;
    }
    const o0 = process.cpuUsage();
    let plainBytes = 0;
    const plains = [];
    for (const r of records) {
      const ctx = { app: 'bench', volume: 'data', volumeId: info.id, block: r.block, seq: r.seq };
      const p = openBlock(keys, ctx, r.record);
      plainBytes += p.length;
      if (plains.length < 64) plains.push(p);
    }
    const oc = process.cpuUsage(o0);
    // Write: 1 GiB (or SIZE) of plaintext in 4 MiB runs of 64 KiB buffers, fsync'd, as a restore
    // writes it (O_DIRECT from aligned staging memory where the file system has it), and through
    // the page cache as restores did before.
    const writeCpu = async (direct) => {
      const out = join(work, 'write-only.img');
      const fh = await openFile(out, 'wx', 0o600);
      const dfh = direct ? await openDirect(out) : undefined;
      const w0 = process.cpuUsage();
      const writer = imageWriter({ fd: fh.fd, directFd: dfh?.fd });
      const pending = [];
      for (let at = 0; at < SIZE; at += 4 * 1024 * 1024) {
        pending.push(writer.write(plains, at));
        if (pending.length >= 8) await pending.shift();
      }
      await Promise.all(pending);
      await dfh?.close();
      await fh.sync();
      await fh.close();
      const wc = process.cpuUsage(w0);
      rmSync(out, { force: true });
      return { cpu: perGiB((wc.user + wc.system) / 1e6, SIZE), direct: writer.directBytes > 0 };
    };
    const open = { cpu: perGiB((oc.user + oc.system) / 1e6, plainBytes) };
    const write = await writeCpu(true);
    const writeBuffered = await writeCpu(false);
    const sum = fetch.restorerCpu + fetch.gatewayCpu + open.cpu + write.cpu;
    const cores = (await import('node:os')).cpus().length;
    return { fetch, open, write, writeBuffered, sum, bestMBps: 1024 ** 3 / MB / (sum / cores) };
  } finally {
    client.close();
  }
}

await main();
