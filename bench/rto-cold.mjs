#!/usr/bin/env node
// Benchmark: cold RTO whatever the disk size (`npm run bench:rto -- --size 16GiB --cold`). For a
// 1 GiB volume and a volume of --size, each holding a quarter of its size (at most 4 GiB) of
// random data in scattered 4 MiB extents, the rest never written, and no image cache:
//   - a drill served on demand over FUSE (the default): `dr drill --wait` to healthy;
//   - a failover with recovery.instant: true: its hydration time and throughput;
//   - a drill with recovery.instant: false: full materialisation, the comparison.
// The health check reads the volume's first block and one scattered extent.
//   node bench/rto-cold.mjs [--size 16GiB] [--smoke] [--json]   (needs redis-server and /dev/fuse)
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  ftruncateSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { bin, freePort, needCommand, say, startProcess } from './lib.mjs';

const { values: args } = parseArgs({
  options: {
    size: { type: 'string', default: '16GiB' },
    cold: { type: 'boolean', default: true },
    smoke: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
function parseSize(s) {
  const m = /^(\d+(?:\.\d+)?)(GiB|MiB)$/.exec(s);
  if (!m) throw new Error(`--size ${s}: give it like 16GiB or 512MiB`);
  return Math.round(Number(m[1]) * (m[2] === 'GiB' ? GiB : MiB));
}
const BIG = args.smoke ? 256 * MiB : parseSize(args.size);
const SMALL = args.smoke ? 64 * MiB : 1 * GiB;
const EXTENT = 4 * MiB;
needCommand('bench:rto --cold', 'redis-server');
const f = (n) => (Number.isFinite(n) ? n.toFixed(2) : '-');

/** A sparse image: a marker block, then a quarter of the size (≤ 4 GiB) in scattered random extents. */
function makeImage(path, size) {
  const data = Math.min(4 * GiB, size / 4);
  const extents = Math.max(1, Math.floor(data / EXTENT));
  const slot = Math.floor(size / extents / EXTENT) * EXTENT;
  const fd = openSync(path, 'w');
  ftruncateSync(fd, size);
  const marker = Buffer.alloc(65536);
  marker.write('lifeboat-marker-bench\n');
  writeSync(fd, marker, 0, marker.length, 0);
  const buf = randomBytes(EXTENT);
  const at = [];
  for (let k = 0; k < extents; k++) {
    const room = Math.max(1, slot / EXTENT - 1);
    const o = k * slot + (1 + Math.floor(Math.random() * room)) * EXTENT;
    if (o + EXTENT > size) continue;
    buf.writeUInt32LE(k, 0); // each extent differs (no dedup across extents)
    writeSync(fd, buf, 0, EXTENT, o);
    at.push(o);
  }
  closeSync(fd);
  return { dataBytes: at.length * EXTENT, probe: at[Math.floor(at.length / 2)] ?? 0 };
}

async function measure(size) {
  const work = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'lifeboat-rto-cold-'));
  const mine = [];
  try {
    const image = join(work, 'data.img');
    const { dataBytes, probe } = makeImage(image, size);
    const home = join(work, 'home');
    const gwPort = await freePort();
    const redisPort = await freePort();
    const redis = startProcess(
      mine,
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
    const check = `head -c 21 "$DR_VOLUME_DATA" | grep -q lifeboat-marker && dd if="$DR_VOLUME_DATA" bs=4096 skip=${probe / 4096} count=16 status=none | od -A n -t x1 | grep -qv '^ 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00$'`;
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
        '--quiesce-timeout',
        '30s',
        '--check',
        check,
        '--check-timeout',
        '60s',
      ],
      { env },
    );
    const yaml = join(home, 'dr.yaml');
    const base = readFileSync(yaml, 'utf8');
    const recovery = (instant) =>
      writeFileSync(yaml, `${base}\nrecovery:\n  imageCache: false\n  instant: ${instant}\n`);
    const gateway = startProcess(mine, process.execPath, [bin, 'gateway'], env, 'gateway');
    await gateway.waitFor(/gateway listening/);
    const t0 = Date.now();
    execFileSync(
      process.execPath,
      [bin, 'agent', '--app', 'bench', '--tracker', 'scan', '--once'],
      { env: { ...env, DR_LOG_LEVEL: 'silent' } },
    );
    const shipS = (Date.now() - t0) / 1000;
    const worker = startProcess(mine, process.execPath, [bin, 'worker'], env, 'worker');
    await worker.waitFor(/worker ready/);
    const op = (verb, instant) => {
      recovery(instant);
      const t = Date.now();
      const r = spawnSync(
        process.execPath,
        [bin, verb, 'bench', ...(verb === 'drill' ? ['--keep', '1s'] : []), '--wait', '--json'],
        { env: { ...env, DR_LOG_LEVEL: 'silent' }, encoding: 'utf8', maxBuffer: 1 << 24 },
      );
      if (r.status !== 0) throw new Error(`${verb} failed: ${r.stdout}${r.stderr}`);
      return { wallMs: Date.now() - t, result: JSON.parse(r.stdout) };
    };
    const instant = op('drill', true);
    const full = op('drill', false);
    const fo = op('failover', true);
    const h = fo.result.recovery?.hydration;
    return {
      sizeBytes: size,
      dataBytes,
      shipSeconds: shipS,
      instantDrill: {
        kind: instant.result.recovery?.kind,
        why: instant.result.recovery?.why,
        wallMs: instant.wallMs,
        rto: instant.result.rto,
      },
      fullDrill: {
        wallMs: full.wallMs,
        rto: full.result.rto,
        materialiseMBps: dataBytes / MiB / (full.result.rto.materialiseMs / 1000),
      },
      instantFailover: {
        wallMs: fo.wallMs,
        rto: fo.result.rto,
        hydrationMs: h?.ms,
        retries: h?.retries,
        hydrationMBps: h ? dataBytes / MiB / (h.ms / 1000) : undefined,
      },
    };
  } finally {
    for (const c of mine.reverse()) c.kill('SIGTERM');
    await sleep(1500);
    for (const c of mine) if (c.exitCode === null) c.kill('SIGKILL');
    // The kernel drops a dead worker's FUSE mount a moment after it exits: detach it, then remove.
    for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
      const p = line.split(' ')[4];
      if (p?.startsWith(work)) spawnSync('fusermount', ['-uz', p]);
    }
    for (let k = 0; ; k++) {
      try {
        rmSync(work, { recursive: true, force: true });
        break;
      } catch (err) {
        if (k >= 20) {
          say(`could not remove ${work}: ${err.message}`);
          break;
        }
        await sleep(500);
      }
    }
  }
}

say(
  `bench:rto --cold: ${SMALL / GiB} GiB and ${BIG / GiB} GiB volumes, a quarter (≤ 4 GiB) written in scattered 4 MiB extents`,
);
const small = await measure(SMALL);
say(`  ${SMALL / GiB} GiB done`);
const big = await measure(BIG);
const ratio = big.instantDrill.rto.totalMs / small.instantDrill.rto.totalMs;
const summary = { small, big, rtoRatio: ratio };
if (args.json) console.log(JSON.stringify(summary, null, 2));
else {
  for (const m of [small, big]) {
    console.log(
      `${f(m.sizeBytes / GiB)} GiB volume, ${f(m.dataBytes / GiB)} GiB data (first sync ${f(m.shipSeconds)} s):`,
    );
    console.log(
      `  instant drill: healthy in ${f(m.instantDrill.rto.totalMs / 1000)} s in the worker (serve ${f(m.instantDrill.rto.materialiseMs / 1000)} s, launch ${f(m.instantDrill.rto.launchMs / 1000)} s, health ${f(m.instantDrill.rto.healthyMs / 1000)} s), drill --wait ${f(m.instantDrill.wallMs / 1000)} s${m.instantDrill.kind === 'instant' ? '' : ` (NOT instant: ${m.instantDrill.why})`} | target <= 5 s`,
    );
    console.log(
      `  full drill: healthy in ${f(m.fullDrill.rto.totalMs / 1000)} s (materialise ${f(m.fullDrill.rto.materialiseMs / 1000)} s, ${f(m.fullDrill.materialiseMBps)} MiB/s of data)`,
    );
    console.log(
      `  instant failover: healthy in ${f(m.instantFailover.rto.totalMs / 1000)} s, hydrated in ${f(m.instantFailover.hydrationMs / 1000)} s (${f(m.instantFailover.hydrationMBps)} MiB/s of data, ${m.instantFailover.retries} retries), failover --wait ${f(m.instantFailover.wallMs / 1000)} s`,
    );
  }
  console.log(
    `instant drill RTO ${f(big.sizeBytes / GiB)} GiB / ${f(small.sizeBytes / GiB)} GiB: ${f(ratio)}x | target < 2x`,
  );
  for (const m of [small, big]) {
    console.log(
      `hydration / full restore, ${f(m.sizeBytes / GiB)} GiB: ${f(m.instantFailover.hydrationMBps / m.fullDrill.materialiseMBps)}x | target >= 1x`,
    );
  }
}
