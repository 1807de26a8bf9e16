#!/usr/bin/env node
// Benchmark: full restore of a point of random data (1 GiB by default) from a loopback gateway,
// with the machine's own limits from the same run: the disk's direct write speed and
// AES-256-GCM decryption per core. Prints figures; never part of `npm test`.
//   node bench/restore.mjs [--size-mib 1024] [--trials 3] [--smoke] [--json]
//   --smoke: 32 MiB, one trial: the same path in seconds.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { bin, freePort, needCommand, root, say } from './lib.mjs';

const { values: args } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '1024' },
    trials: { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
    smoke: { type: 'boolean', default: false },
  },
});
const SIZE = (args.smoke ? 32 : Number(args['size-mib'])) * 1024 * 1024;
const TRIALS = args.smoke ? 1 : Math.max(1, Number(args.trials));

if (!existsSync(join(root, 'dist/cli/main.js'))) {
  say('bench: build first (npm run build)');
  process.exit(2);
}
needCommand('bench', 'dd', 'coreutils');

const work = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'lifeboat-restore-'));
const src = join(work, 'volume.img');
const MB = 1e6;

function dr(argv) {
  const r = spawnSync(process.execPath, [bin, ...argv], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`dr ${argv.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
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
  dr(['--home', home, 'init', '--gateway', `127.0.0.1:${port}`]);
  dr(['--home', home, 'app', 'add', 'bench', '--volume', `data=${src}`]);
  const gateway = spawn(process.execPath, [bin, '--home', home, 'gateway'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, DR_LOG_LEVEL: 'warn' },
  });
  try {
    await new Promise((resolve, reject) => {
      let out = '';
      gateway.stdout.on('data', (c) => {
        out += c;
        if (out.includes('gateway listening')) resolve();
      });
      gateway.on('exit', (code) => reject(new Error(`gateway exited ${code}`)));
    });
    dr(['--home', home, 'agent', '--app', 'bench', '--once', '--json']);
    const runs = [];
    for (let i = 0; i < TRIALS; i++) {
      const to = join(work, `restored-${i}.img`);
      execFileSync('sync');
      const t0 = process.hrtime.bigint();
      dr([
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
      ]);
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      runs.push(s);
      rmSync(to, { force: true });
      say(`bench: restore ${i + 1}: ${s.toFixed(2)} s`);
    }
    const best = Math.min(...runs);
    const median = [...runs].sort((a, b) => a - b)[Math.floor(runs.length / 2)];
    const result = {
      sizeMiB: SIZE / 1024 / 1024,
      restoreSeconds: { best, median },
      restoreMBps: SIZE / median / MB,
      diskDirectWriteMBps: directWriteSpeed(),
      gcmDecryptMBpsPerCore: gcmPerCore(),
      cores: (await import('node:os')).cpus().length,
      loadavg: loadavg().map((x) => Math.round(x * 100) / 100),
      date: new Date().toISOString(),
    };
    if (args.json) console.log(JSON.stringify(result));
    else {
      console.log(
        `full restore of ${result.sizeMiB} MiB random: ${median.toFixed(2)} s median (best ${best.toFixed(2)} s), ${result.restoreMBps.toFixed(0)} MB/s; target >= 500 MB/s`,
      );
      console.log(
        `machine limits, same run: disk direct write ${result.diskDirectWriteMBps.toFixed(0)} MB/s; AES-256-GCM decrypt ${result.gcmDecryptMBpsPerCore.toFixed(0)} MB/s per core x ${result.cores} cores`,
      );
      console.log(`load average ${result.loadavg.join(' ')} at ${result.date}`);
    }
  } finally {
    gateway.kill('SIGTERM');
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
