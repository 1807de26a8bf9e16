#!/usr/bin/env node
// Benchmark: what the write tally (the bytes written against the block bytes they dirty, at the
// volume's block size, 4 KiB and 16 KiB) adds to the trace tracker's work per trace line.
// Synthetic block_bio_queue lines (half 4 KiB, half 64 KiB writes at random 4 KiB-aligned
// offsets of a 16 GiB device) go through what the tracker does with each: the line's regular
// expression, its numbers, the dirty bitmap (the baseline); then the same plus the tally.
//   node bench/write-tally.mjs [--lines 1000000] [--smoke] [--json]
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { BIO_LINE, DirtyBitmap, WriteTally } from '../dist/bench/bench-api.js';

const { values: args } = parseArgs({
  options: {
    lines: { type: 'string', default: '1000000' },
    json: { type: 'boolean', default: false },
    smoke: { type: 'boolean', default: false },
  },
});
const count = args.smoke ? 20_000 : Number(args.lines);
const BLOCK = 65536;
const SECTORS = (16 * 2 ** 30) / 512;

const lines = [];
for (let i = 0; i < count; i++) {
  const sectors = i % 2 === 0 ? 8 : 128;
  const sector = Math.floor(Math.random() * ((SECTORS - sectors) / 8)) * 8;
  lines.push(
    `fio-4120 [001] ..... 3952.228706: block_bio_queue: 7,3 WS ${sector} + ${sectors} [fio]`,
  );
}

/** One pass over the lines; with `tally`, each write is also counted there. */
function pass(tally) {
  const dirty = new DirtyBitmap();
  const t0 = process.hrtime.bigint();
  for (const line of lines) {
    const bio = BIO_LINE.exec(line);
    if (!bio) continue;
    const sectors = Number(bio[5]);
    const sector = Number(bio[4]);
    if (tally) tally.addSectors(sector, sectors);
    const first = Math.floor((sector * 512) / BLOCK);
    const last = Math.floor(((sector + sectors) * 512 - 1) / BLOCK);
    dirty.addRange(first, last);
  }
  const ns = Number(process.hrtime.bigint() - t0);
  dirty.take();
  return ns / count;
}

const load = () => loadavg()[0].toFixed(1);
const loadBefore = load();
const runs = args.smoke ? 2 : 7;
// One unmeasured pass of each first, so both run optimised code.
pass(undefined);
pass(new WriteTally(BLOCK));
const base = [];
const withTally = [];
for (let r = 0; r < runs; r++) {
  base.push(pass(undefined));
  withTally.push(pass(new WriteTally(BLOCK)));
}
// The best of the runs: the machine is shared, and the least disturbed run is the cost itself.
const best = (xs) => Math.min(...xs);
const b = best(base);
const w = best(withTally);
const result = {
  lines: count,
  baselineNsPerLine: b,
  withTallyNsPerLine: w,
  ratio: w / b,
  load: `${loadBefore} → ${load()}`,
};
if (args.json) console.log(JSON.stringify(result));
else {
  console.log(`trace lines: ${count}, best of ${runs} runs, load ${result.load}`);
  console.log(`baseline (parse, dirty bitmap): ${b.toFixed(0)} ns per line`);
  console.log(`with the write tally: ${w.toFixed(0)} ns per line`);
  console.log(`ratio to the baseline: ${result.ratio.toFixed(3)}`);
}
