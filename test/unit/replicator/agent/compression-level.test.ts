// The adaptive level climbs on a slow link and drops to the fastest on a fast one.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CompressionLevel } from '../../../../replicator/agent/compression-level.js';
import { BlockCompressor } from '../../../../replicator/crypto/block-compression.js';

const BLOCK = 64 * 1024;
const text = (() => {
  const src = readFileSync(new URL(import.meta.url));
  const out = Buffer.alloc(BLOCK);
  for (let o = 0; o < BLOCK; o += src.length) src.copy(out, o);
  for (let o = 0; o < BLOCK; o += 97) out[o] = (o * 31) & 0xff; // less trivially repetitive
  return out;
})();

/**
 * Runs `windows` windows of 16 blocks on a virtual link of `linkRate` bytes/s:
 * each batch of 16 blocks spends as long on the wire as its compressed size needs.
 */
function drive(linkRate: number, windows: number, cap?: number): number[] {
  const compressor = new BlockCompressor({ codec: 'zstd', level: 3 });
  let clock = 0;
  const level = new CompressionLevel(compressor, {
    windowBytes: 16 * BLOCK,
    now: () => clock,
    ...(cap !== undefined ? { capRate: () => cap } : {}),
  });
  const seen: number[] = [];
  for (let w = 0; w < windows; w++) {
    let packed = 0;
    for (let i = 0; i < 16; i++) packed += compressor.compress(text)?.payload.length ?? BLOCK;
    level.sendStarted();
    clock += (packed / linkRate) * 1000;
    level.sendEnded(packed);
    for (let i = 0; i < 16; i++) level.blockSealed(BLOCK);
    seen.push(level.level);
  }
  return seen;
}

describe('adaptive compression level', () => {
  it('climbs on a slow link (100 kB/s): compression has time to spare', () => {
    const seen = drive(1e5, 8);
    expect(seen.at(-1)).toBeGreaterThan(3);
    expect(seen.at(-1)).toBeLessThanOrEqual(9);
  });

  it('gets there after one window, not one level per window', () => {
    expect(drive(1e5, 1)[0]).toBeGreaterThan(4);
  });

  it('falls to level 1 on a link faster than compression (100 GB/s)', () => {
    expect(drive(100e9, 4).at(-1)).toBe(1);
  });

  it('counts a bandwidth cap as the link: a fast link capped at 100 kB/s climbs', () => {
    expect(drive(100e9, 8, 1e5).at(-1)).toBeGreaterThan(3);
  });

  it('keeps its level until a batch came back (nothing known about the link)', () => {
    const compressor = new BlockCompressor({ codec: 'zstd', level: 3 });
    const level = new CompressionLevel(compressor, { windowBytes: BLOCK, now: () => 0 });
    compressor.compress(text);
    expect(level.blockSealed(BLOCK)).toBeUndefined();
    expect(level.level).toBe(3);
  });
});
