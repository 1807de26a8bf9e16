#!/usr/bin/env node
// Benchmark (offline, no link): would a zstd dictionary per volume shorten what the agent sends?
// Builds bench:wan's realistic disk (bench/wan-images.mjs), cuts the initial image and the
// incremental's changed blocks into blocks, leaves out zero blocks and repeats (they travel as a
// flag and as references), and compresses each remaining block alone the way the agent does
// (the same skip test, kept only when it saves 1/16), at each level, without a dictionary and
// with dictionaries of each size: raw content (pieces of sampled blocks, no training) and trained
// by the zstd CLI (`zstd --train`) on sampled blocks. Prints payload bytes, the ratio to no
// dictionary, and the compression CPU (MB/s of plain data per CPU second). Then, for the
// incremental: frames of up to 1, 4, 16 consecutive changed blocks and one stream (every block
// tried, no skip test), and where its bytes go by what the blocks hold
// (bench/zstd-dictionary-where.mjs, debugfs).
// Prints figures; never part of `npm test`. Needs root (loop mounts) and the zstd CLI for the
// trained rows.
//   node bench/zstd-dictionary.mjs [--fill-mib 1100] [--block-size 64KiB] [--levels 3,6,9]
//     [--dict-kib 32,64,128,256] [--sample 4] [--smoke] [--json]
//   --sample N compresses every Nth block of the initial image (all changed blocks always).
//   --smoke: bench:wan's smoke disk (96 MiB of files), level 3, one 64 KiB dictionary of each kind.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import zstd from 'zstd-napi/binding.js';
import { worthCompressing } from '../dist/bench/bench-api.js';
import { say } from './lib.mjs';
import { wanImages } from './wan-images.mjs';
import { whereBytesGo } from './zstd-dictionary-where.mjs';

const { values: args } = parseArgs({
  options: {
    'fill-mib': { type: 'string', default: '1100' },
    'block-size': { type: 'string', default: '64KiB' },
    levels: { type: 'string', default: '3,6,9' },
    'dict-kib': { type: 'string', default: '32,64,128,256' },
    sample: { type: 'string', default: '4' },
    smoke: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});
const SMOKE = args.smoke;
const BLOCK = Number.parseInt(args['block-size'], 10) * 1024;
const LEVELS = SMOKE ? [3] : args.levels.split(',').map(Number);
const DICT_KIB = SMOKE ? [64] : args['dict-kib'].split(',').map(Number);
const SAMPLE = SMOKE ? 1 : Number(args.sample);
if (!(BLOCK >= 4096) || LEVELS.some((l) => !(l >= 1 && l <= 19)) || !(SAMPLE >= 1)) {
  say('bench:zstd-dictionary: --block-size is like 64KiB, --levels 1-19, --sample >= 1');
  process.exit(1);
}
if (process.getuid?.() !== 0) {
  say('bench:zstd-dictionary: skipped: needs root (loop mounts to build the disk image)');
  process.exit(2);
}
const hasZstdCli = spawnSync('sh', ['-c', 'command -v zstd']).status === 0;
if (!hasZstdCli)
  say('bench:zstd-dictionary: no zstd CLI (apt-get install -y zstd): trained rows left out');

const sh = (cmd, a, opts = {}) => execFileSync(cmd, a, { encoding: 'utf8', ...opts }).trim();
const work = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'lifeboat-dict-'));
const mounted = new Set();
const cleanup = () => {
  for (const dir of mounted) spawnSync('umount', ['-l', dir]);
  rmSync(work, { recursive: true, force: true });
};
process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});

/** Every non-zero block of `image` as [index, buffer]. */
function* blocksOf(image) {
  const fd = openSync(image, 'r');
  try {
    const size = statSync(image).size;
    for (let i = 0; i * BLOCK < size; i++) {
      const b = Buffer.alloc(BLOCK);
      readSync(fd, b, 0, BLOCK, i * BLOCK);
      if (b.some((x) => x !== 0)) yield [i, b];
    }
  } finally {
    closeSync(fd);
  }
}

const digest = (b) => createHash('sha256').update(b).digest('hex');

/**
 * Unique non-zero blocks of the initial image, and the changed blocks not already sent (`delta`,
 * block indices in `at`).
 */
function blockSets(initial, changed) {
  const seen = new Set();
  const before = new Map();
  const first = [];
  for (const [i, b] of blocksOf(initial)) {
    const d = digest(b);
    before.set(i, d);
    if (seen.has(d)) continue;
    seen.add(d);
    first.push(b);
  }
  const delta = [];
  const at = [];
  for (const [i, b] of blocksOf(changed)) {
    const d = digest(b);
    if (before.get(i) === d || seen.has(d)) continue;
    seen.add(d);
    delta.push(b);
    at.push(i);
  }
  return { first, delta, at };
}

/** Blocks the agent would compress (not random-looking), evenly spaced, `n` of them. */
function spread(blocks, n) {
  const worth = blocks.filter((b) => worthCompressing(b));
  const step = Math.max(1, Math.floor(worth.length / n));
  const out = [];
  for (let i = 0; i < worth.length && out.length < n; i += step) out.push(worth[i]);
  return out;
}

/** A raw-content dictionary: a `piece`-byte slice from the middle of each sampled block. */
function rawDictionary(blocks, bytes, piece) {
  const picked = spread(blocks, Math.ceil(bytes / piece));
  return Buffer.concat(
    picked.map((b) => b.subarray((BLOCK - piece) >> 1, ((BLOCK - piece) >> 1) + piece)),
  ).subarray(0, bytes);
}

/** A dictionary trained by the zstd CLI on up to 4 000 sampled blocks; and the training time. */
function trainedDictionary(blocks, bytes) {
  const dir = join(work, 'train');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir);
  for (const [i, b] of spread(blocks, 4000).entries()) writeFileSync(join(dir, `${i}`), b);
  const out = join(work, 'dict');
  const t0 = performance.now();
  sh('zstd', ['-q', '-f', '--train', '-r', dir, `--maxdict=${bytes}`, '-o', out]);
  const seconds = (performance.now() - t0) / 1000;
  const fd = openSync(out, 'r');
  const dict = Buffer.alloc(statSync(out).size);
  readSync(fd, dict, 0, dict.length, 0);
  closeSync(fd);
  return { dict, seconds };
}

/** Payload bytes and compression seconds for `blocks` at `level`, with `dict` or without. */
function measure(blocks, level, dict) {
  const cctx = new zstd.CCtx();
  const cdict = dict ? new zstd.CDict(dict, level) : undefined;
  const out = Buffer.allocUnsafe(zstd.compressBound(BLOCK));
  let plain = 0;
  let packed = 0;
  const t0 = process.cpuUsage();
  for (const b of blocks) {
    plain += b.length;
    if (!worthCompressing(b)) {
      packed += b.length;
      continue;
    }
    const n = cdict ? cctx.compressUsingCDict(out, b, cdict) : cctx.compress(out, b, level);
    packed += n <= b.length - (b.length >> 4) ? n : b.length;
  }
  const t = process.cpuUsage(t0);
  return { plain, packed, seconds: (t.user + t.system) / 1e6 };
}

/**
 * The incremental's blocks compressed in frames of up to `n` consecutive changed blocks (`n` of
 * Infinity: the whole delta as one stream, the most any framing could gain).
 */
function framed(blocks, at, level, n) {
  const cctx = new zstd.CCtx();
  let plain = 0;
  let packed = 0;
  const t0 = process.cpuUsage();
  for (let i = 0; i < blocks.length; ) {
    let j = i + 1;
    while (j < blocks.length && j - i < n && at[j] === (at[j - 1] ?? 0) + 1) j++;
    const frame = Buffer.concat(blocks.slice(i, j));
    const out = Buffer.allocUnsafe(zstd.compressBound(frame.length));
    const k = cctx.compress(out, frame, level);
    plain += frame.length;
    packed += k <= frame.length - (frame.length >> 4) ? k : frame.length;
    i = j;
  }
  const t = process.cpuUsage(t0);
  return { plain, packed, seconds: (t.user + t.system) / 1e6 };
}

const MiB = 1024 * 1024;
const images = wanImages({
  sh,
  work,
  mounted,
  imageMiB: SMOKE ? 256 : 2048,
  fillBytes: (SMOKE ? 96 : Number(args['fill-mib'])) * MiB,
  rows: SMOKE ? 8_000 : 80_000,
  docBytes: (SMOKE ? 16 : 1 << 20) * MiB,
});
try {
  say("bench:zstd-dictionary: building the realistic disk (bench:wan's) and its day of changes");
  const { initial, changed } = images.prepareImages();
  const { first, delta, at } = blockSets(initial, changed);
  const firstSample = first.filter((_, i) => i % SAMPLE === 0);
  say(
    `bench:zstd-dictionary: ${first.length} unique blocks initial (measuring every ${SAMPLE}th), ${delta.length} changed`,
  );
  const dicts = [{ name: 'none' }];
  for (const kib of DICT_KIB) {
    dicts.push({
      name: `raw ${kib} KiB, 1 KiB pieces`,
      dict: rawDictionary(first, kib * 1024, 1024),
    });
    dicts.push({
      name: `raw ${kib} KiB, 4 KiB pieces`,
      dict: rawDictionary(first, kib * 1024, 4096),
    });
    if (hasZstdCli) {
      const { dict, seconds } = trainedDictionary(first, kib * 1024);
      dicts.push({ name: `trained ${kib} KiB (${seconds.toFixed(1)} s to train)`, dict });
    }
  }
  const rows = [];
  for (const level of LEVELS) {
    let base;
    for (const d of dicts) {
      const a = measure(firstSample, level, d.dict);
      const b = measure(delta, level, d.dict);
      base ??= { a, b };
      rows.push({
        level,
        dict: d.name,
        initial: a,
        incremental: b,
        vsNone: { initial: a.packed / base.a.packed, incremental: b.packed / base.b.packed },
      });
      say(
        `level ${level} ${d.name}: initial ${(a.packed / MiB).toFixed(1)} MiB of ${(a.plain / MiB).toFixed(1)} (${(a.packed / base.a.packed).toFixed(3)}x, ${(a.plain / MiB / a.seconds).toFixed(0)} MB/s), ` +
          `incremental ${(b.packed / MiB).toFixed(1)} MiB of ${(b.plain / MiB).toFixed(1)} (${(b.packed / base.b.packed).toFixed(3)}x, ${(b.plain / MiB / b.seconds).toFixed(0)} MB/s)`,
      );
    }
  }
  const frames = [];
  for (const level of LEVELS)
    for (const n of [1, 4, 16, Number.POSITIVE_INFINITY]) {
      const f = framed(delta, at, level, n);
      frames.push({ level, blocksPerFrame: n, ...f });
      say(
        `level ${level}, incremental ${n === Number.POSITIVE_INFINITY ? 'as one frame' : `in frames of up to ${n} consecutive blocks`}: ${(f.packed / MiB).toFixed(1)} MiB of ${(f.plain / MiB).toFixed(1)} (${(f.plain / MiB / f.seconds).toFixed(0)} MB/s)`,
      );
    }
  const level = LEVELS.at(-1) ?? 6;
  const where = whereBytesGo({
    ...{ work, image: changed, blockSize: BLOCK, at, delta },
    compress: (b) => measure([b], level).packed,
  });
  for (const w of where)
    say(
      `level ${level}, changed blocks holding ${w.what}: ${w.blocks} blocks, ${(w.plain / MiB).toFixed(1)} MiB plain, ${(w.packed / MiB).toFixed(1)} MiB compressed`,
    );
  const meta = {
    date: new Date().toISOString(),
    loadavg: loadavg().map((l) => l.toFixed(1)),
    blockSize: BLOCK,
    sample: SAMPLE,
  };
  if (args.json)
    process.stdout.write(`${JSON.stringify({ meta, rows, frames, where }, null, 2)}\n`);
  else say(`bench:zstd-dictionary ${meta.date}, load ${meta.loadavg.join(' ')}`);
} finally {
  cleanup();
}
