#!/usr/bin/env node
// Benchmark: RTO with the local provider. An app with one 1 GiB volume and a
// small health-checked service (test/fixtures/volume-server.mjs). Measures a
// drill's lag impact while the agent replicates under 20 MB/s of writes, then
// the time from `dr failover --wait` to healthy, with its split.
// `dr warm` keeps the image cache at the latest consistent point (under nice), as
// docs/recovery.md recommends; --no-warm measures without it.
// The failback line says how many blocks it had to send (the new ones, and the ones the source
// wrote after the failover point, found by comparing the two images) beside the blocks it sent.
//   node bench/rto.mjs [--size-mib 1024] [--seconds 20] [--no-warm] [--smoke] [--json]   (needs redis-server)
//   --smoke: a 32 MiB volume, 3 s phases at 2 MB/s, 32 new blocks: the same path in seconds.
//   --cold [--size 16GiB]: bench/rto-cold.mjs (instant recovery with no image cache, 1 GiB vs --size).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { gatewayClientFor, lagSeconds, pointTime } from '../dist/bench/bench-api.js';
import { bin, freePort, needCommand, pct, root, say, startProcess } from './lib.mjs';

// --cold: the RTO of a cold drill whatever the disk size (instant recovery): its own benchmark.
if (process.argv.includes('--cold')) {
  await import('./rto-cold.mjs');
  process.exit(process.exitCode ?? 0);
}

const { values: args } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '1024' },
    seconds: { type: 'string', default: '20' },
    json: { type: 'boolean', default: false },
    'no-warm': { type: 'boolean', default: false },
    smoke: { type: 'boolean', default: false },
  },
});
const SMOKE = args.smoke;
const WARM = !args['no-warm'];
const SIZE = (SMOKE ? 32 : Number(args['size-mib'])) * 1024 * 1024;
const SECONDS = SMOKE ? 3 : Number(args.seconds);
const RATE = (SMOKE ? 2 : 20) * 1024 * 1024;
const NEW_BLOCKS = SMOKE ? 32 : 320;
const BLOCK = 65536; // the app's block size (the default), and the writer's write size
const serverScript = join(root, 'test/fixtures/volume-server.mjs');
needCommand('bench:rto', 'redis-server');

const work = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'lifeboat-rto-'));
const children = [];
const f = (n) => (Number.isFinite(n) ? n.toFixed(2) : '-');

const start = (cmd, argv, env, name) => startProcess(children, cmd, argv, env, name);

/**
 * Random 64 KiB writes to the image at a given rate (bytes/s), until stopped; the stop function
 * answers when each block was last written (ms since the epoch).
 */
function writer(image, rate) {
  let stop = false;
  const lastWrite = new Map();
  const done = (async () => {
    const fd = openSync(image, 'r+');
    const block = randomBytes(65536);
    const every = 65536 / rate;
    const t0 = Date.now();
    for (let n = 0; !stop; n++) {
      block.writeUInt32LE(n, 0);
      const b = 1 + Math.floor(Math.random() * (SIZE / BLOCK - 1));
      writeSync(fd, block, 0, BLOCK, b * BLOCK);
      lastWrite.set(b, Date.now());
      // Behind schedule on a busy machine: still yield, so lag samples and drills go on.
      const wait = t0 + (n + 1) * every * 1000 - Date.now();
      await sleep(Math.max(0, wait));
    }
    closeSync(fd);
  })();
  return async () => {
    stop = true;
    await done;
    return lastWrite;
  };
}

/** The 64 KiB blocks at which two files differ (read a few MiB at a time). */
function differingBlocks(a, b) {
  const fa = openSync(a, 'r');
  const fb = openSync(b, 'r');
  const chunk = 64 * BLOCK;
  const ba = Buffer.alloc(chunk);
  const bb = Buffer.alloc(chunk);
  const out = [];
  try {
    for (let at = 0; at < SIZE; at += chunk) {
      const len = Math.min(chunk, SIZE - at);
      ba.fill(0);
      bb.fill(0);
      readSync(fa, ba, 0, len, at);
      readSync(fb, bb, 0, len, at);
      for (let o = 0; o < len; o += BLOCK)
        if (ba.compare(bb, o, o + BLOCK, o, o + BLOCK) !== 0) out.push((at + o) / BLOCK);
    }
  } finally {
    closeSync(fa);
    closeSync(fb);
  }
  return out;
}

try {
  say(`bench:rto: ${SIZE / 1024 / 1024} MiB volume, local provider (work dir ${work})`);
  const image = join(work, 'data.img');
  const fd = openSync(image, 'w');
  const marker = Buffer.alloc(65536);
  marker.write('lifeboat-marker-bench\n');
  writeSync(fd, marker, 0, marker.length, 0);
  for (let o = 65536; o < SIZE; o += 8 << 20)
    writeSync(fd, randomBytes(Math.min(8 << 20, SIZE - o)), 0, Math.min(8 << 20, SIZE - o), o);
  closeSync(fd);

  const home = join(work, 'home');
  const gwPort = await freePort();
  const redisPort = await freePort();
  const svcPort = await freePort();
  const redis = start(
    'redis-server',
    ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    process.env,
    'redis',
  );
  await redis.waitFor(/Ready to accept connections/);
  const env = {
    ...process.env,
    DR_HOME: home,
    REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    DR_LOG_LEVEL: 'info',
  };
  execFileSync(process.execPath, [bin, 'init', '--gateway', `127.0.0.1:${gwPort}`], { env });
  execFileSync(
    process.execPath,
    [
      bin,
      'app',
      'add',
      'bench',
      '--volume',
      `data=${image}`,
      '--quiesce-freeze',
      'true',
      '--quiesce-thaw',
      'true',
      // The scan tracker rescans the whole volume inside the freeze; on a busy shared machine
      // that outlasts the default 2 s and every point comes out fuzzy (a drill then has none).
      '--quiesce-timeout',
      '10s',
      '--start',
      `exec node ${serverScript} ${svcPort} 0 bench`,
      '--check',
      `http://127.0.0.1:${svcPort}/health`,
      '--check-timeout',
      '30s',
    ],
    { env },
  );
  const gateway = start(process.execPath, [bin, 'gateway'], env, 'gateway');
  await gateway.waitFor(/gateway listening/);
  start(process.execPath, [bin, 'worker'], env, 'worker');
  const agent = start(
    process.execPath,
    [bin, 'agent', '--app', 'bench', '--tracker', 'scan', '--interval', '1s'],
    env,
    'agent',
  );
  // The first point, then a second cycle: a second point, or the agent's word that nothing
  // changed since the first (an idle agent commits no empty points).
  await agent.waitFor(
    /recovery point committed[\s\S]*(recovery point committed|no change since the last point)/,
    120_000,
  );
  if (WARM) {
    // The first round fills the cache (the whole volume) before anything is measured.
    execFileSync('nice', ['-n', '10', process.execPath, bin, 'warm', '--once'], { env });
    start('nice', ['-n', '10', process.execPath, bin, 'warm', '--every', '2s'], env, 'warm');
  }
  const client = gatewayClientFor(home, gwPort);
  const sampleLag = async (ms) => {
    const lags = [];
    const until = Date.now() + ms;
    while (Date.now() < until) {
      await sleep(1000);
      const lag = await lagSeconds(client, 'bench');
      if (lag !== undefined) lags.push(lag);
    }
    return lags;
  };

  // Drill under load: lag with and without a drill running.
  const stopWriter = writer(image, RATE);
  const quiet = await sampleLag(SECONDS * 1000);
  const drills = [];
  const during = [];
  const until = Date.now() + SECONDS * 1000;
  while (Date.now() < until) {
    const t0 = Date.now();
    const drill = spawn(
      process.execPath,
      [bin, 'drill', 'bench', '--keep', '1s', '--wait', '--json'],
      { env: { ...env, DR_LOG_LEVEL: 'silent' }, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    drill.stdout.on('data', (c) => (out += c));
    const lagPromise = (async () => {
      while (drill.exitCode === null) {
        await sleep(1000);
        const lag = await lagSeconds(client, 'bench');
        if (lag !== undefined) during.push(lag);
      }
    })();
    const code = await new Promise((r) => drill.once('exit', r));
    await lagPromise;
    if (code !== 0) throw new Error(`drill failed: ${out}`);
    drills.push({ ms: Date.now() - t0, result: JSON.parse(out) });
    await sleep(1500); // its cleanup runs (keep 1s) before the next drill
  }
  // The source stops writing before the failover, as a fenced source would.
  const lastWrite = await stopWriter();
  const stoppedAt = Date.now();

  // Failover: from the command to a healthy server.
  const t0 = Date.now();
  const fo = spawnSync(process.execPath, [bin, 'failover', 'bench', '--wait', '--json'], {
    env: { ...env, DR_LOG_LEVEL: 'silent' },
    encoding: 'utf8',
  });
  const failoverMs = Date.now() - t0;
  if (fo.status !== 0) throw new Error(`failover failed: ${fo.stdout}${fo.stderr}`);
  const result = JSON.parse(fo.stdout);
  // A fresh client: the failover blocked this process long enough for the gateway to close the
  // idle keep-alive sockets of the first, and reusing one then fails with ECONNRESET.
  client.close();
  const after = gatewayClientFor(home, gwPort);
  const point = await pointTime(after, 'bench', result.point);
  after.close();

  // Failback: the recovered server's volume gets NEW_BLOCKS new 64 KiB blocks, then
  // `dr failback --wait` copies back only the blocks whose MAC differs. What it must send: those,
  // and every block the source wrote after the failover point (the data a failover gives up),
  // found by comparing the recovered image with the source before the new blocks go in.
  const recovered = result.server.details['volume.data'];
  const diverged = differingBlocks(recovered, image);
  const afterPoint = [...lastWrite.values()].filter((t) => t >= point.time).length;
  const rfd = openSync(recovered, 'r+');
  const written = new Set();
  while (written.size < NEW_BLOCKS) written.add(1 + Math.floor(Math.random() * (SIZE / BLOCK - 1)));
  for (const b of written) writeSync(rfd, randomBytes(BLOCK), 0, BLOCK, b * BLOCK);
  closeSync(rfd);
  const expected = new Set([...written, ...diverged]).size;
  const fb0 = Date.now();
  const fbRun = spawnSync(process.execPath, [bin, 'failback', 'bench', '--wait', '--json'], {
    env: { ...env, DR_LOG_LEVEL: 'silent' },
    encoding: 'utf8',
  });
  const failbackWallMs = Date.now() - fb0;
  if (fbRun.status !== 0) throw new Error(`failback failed: ${fbRun.stdout}${fbRun.stderr}`);
  const fb = JSON.parse(fbRun.stdout);

  const quietMax = Math.max(...quiet);
  const duringMax = Math.max(...during);
  const summary = {
    date: new Date().toISOString(),
    sizeBytes: SIZE,
    warm: WARM,
    failover: {
      wallMs: failoverMs,
      rto: result.rto,
      point: result.point,
      pointLabel: point.label,
      dataAgeSeconds: result.dataAgeSeconds,
      /** From the point's instant to the source's last write. */
      pointBeforeStopSeconds: (stoppedAt - point.time) / 1000,
    },
    failback: {
      wallMs: failbackWallMs,
      blocksWritten: written.size,
      blocksSourceWroteAfterPoint: afterPoint,
      blocksDiverged: diverged.length,
      blocksExpected: expected,
      blocksSent: fb.volumes.reduce((n, v) => n + v.blocksSent, 0),
      bytesSent: fb.bytesSent,
      size: fb.size,
      precopyMs: fb.precopyMs,
      downtimeMs: fb.downtimeMs,
      totalMs: fb.totalMs,
    },
    drill: {
      count: drills.length,
      rtoTotalMsP50: pct(
        drills.map((d) => d.result.rto.totalMs),
        50,
      ),
      lagWithout: { p50: pct(quiet, 50), max: quietMax },
      lagDuring: { p50: pct(during, 50), max: duringMax },
    },
  };
  if (args.json) console.log(JSON.stringify(summary, null, 2));
  else {
    const r = result.rto;
    console.log(
      `RTO benchmark: ${SIZE / 1024 / 1024} MiB volume, local provider, health-checked HTTP service, ${WARM ? 'dr warm running' : 'no dr warm'}`,
    );
    console.log(
      `failover --wait to healthy: ${f(failoverMs / 1000)} s (materialise ${f(r.materialiseMs / 1000)} s, launch ${f(r.launchMs / 1000)} s, healthy ${f(r.healthyMs / 1000)} s, total in worker ${f(r.totalMs / 1000)} s) | target <= 5 s`,
    );
    const b = summary.failback;
    console.log(
      `failover point: #${result.point} (${point.label}), data age ${f(result.dataAgeSeconds)} s, ${f(summary.failover.pointBeforeStopSeconds)} s before the source stopped writing`,
    );
    console.log(
      `failback after ${written.size} new 64 KiB blocks: expected ${b.blocksExpected} blocks (${written.size} new, ${b.blocksDiverged} the source wrote after the failover point; its writer logged ${b.blocksSourceWroteAfterPoint} after the point's instant), sent ${b.blocksSent} blocks, ${f(fb.bytesSent / 1048576)} MiB of ${f(fb.size / 1048576)} MiB, pre-copy ${f(fb.precopyMs / 1000)} s, downtime ${f(fb.downtimeMs / 1000)} s, --wait ${f(failbackWallMs / 1000)} s`,
    );
    console.log(
      `drills under ${RATE / 1048576} MiB/s of writes: ${drills.length}, RTO p50 ${f(summary.drill.rtoTotalMsP50 / 1000)} s`,
    );
    console.log(
      `lag without a drill: p50 ${f(summary.drill.lagWithout.p50)} s, max ${f(quietMax)} s | during drills: p50 ${f(summary.drill.lagDuring.p50)} s, max ${f(duringMax)} s | difference of max ${f(duringMax - quietMax)} s (target <= 1 s)`,
    );
  }
} finally {
  for (const c of children.reverse()) c.kill('SIGTERM');
  await sleep(1500);
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  spawnSync('pkill', ['-f', `${work}`]); // a drill server left by an interrupted run
  rmSync(work, { recursive: true, force: true });
}
