// Records sealed with zstd or lz4 open to the same bytes; lz4 records of older stores stay readable.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  FLAG_LZ4,
  FLAG_ZERO,
  FLAG_ZSTD,
  openBlock,
  readRecordHeader,
  sealBlock,
} from '../../../../replicator/crypto/block-cipher.js';
import { BlockCompressor } from '../../../../replicator/crypto/block-compression.js';
import {
  blockMac,
  NonceSource,
  type VolumeKeys,
} from '../../../../replicator/crypto/volume-key.js';

const BLOCK = 64 * 1024;
const macKey = randomBytes(32);
const keys: VolumeKeys = {
  enc: randomBytes(32),
  mac: macKey,
  zeroMac: blockMac(macKey, Buffer.alloc(BLOCK)),
  blockSize: BLOCK,
  nonces: new NonceSource(),
};
const ctx = { app: 'web', volume: 'data', volumeId: 1, block: 7, seq: 3 };

/** 64 KiB of this test file repeated: text, as a disk holds. */
function textBlock(): Buffer {
  const src = readFileSync(new URL(import.meta.url));
  const out = Buffer.alloc(BLOCK);
  for (let o = 0; o < BLOCK; o += src.length) src.copy(out, o);
  return out;
}

function seal(plain: Buffer, c?: BlockCompressor): Buffer {
  return sealBlock(keys, ctx, plain, blockMac(keys.mac, plain), c);
}

describe('block compression', () => {
  it('seals text with zstd, smaller than lz4, and opens it to the same bytes', () => {
    const plain = textBlock();
    const z = seal(plain, new BlockCompressor({ codec: 'zstd', level: 3 }));
    const l = seal(plain, new BlockCompressor({ codec: 'lz4' }));
    expect(readRecordHeader(z).flags).toBe(FLAG_ZSTD);
    expect(readRecordHeader(l).flags).toBe(FLAG_LZ4);
    expect(z.length).toBeLessThan(l.length);
    expect(openBlock(keys, ctx, z).equals(plain)).toBe(true);
    expect(openBlock(keys, ctx, l).equals(plain)).toBe(true);
  });

  it('reads an lz4 record from an older store (sealed before zstd existed)', () => {
    const plain = textBlock();
    const old = seal(plain, new BlockCompressor({ codec: 'lz4' }));
    // Opening needs no compressor: the record's flags say which codec it used.
    expect(openBlock(keys, ctx, old).equals(plain)).toBe(true);
  });

  it('compresses more at a higher level', () => {
    const plain = Buffer.concat([textBlock().subarray(0, BLOCK / 2), randomBytes(BLOCK / 2)]);
    plain.write('x'.repeat(200), 100);
    const fast = seal(plain, new BlockCompressor({ codec: 'zstd', level: 1 }));
    const slow = seal(plain, new BlockCompressor({ codec: 'zstd', level: 19 }));
    expect(slow.length).toBeLessThanOrEqual(fast.length);
    expect(openBlock(keys, ctx, slow).equals(plain)).toBe(true);
  });

  it('sends random bytes as they are and zero blocks as a flag', () => {
    const c = new BlockCompressor({ codec: 'zstd', level: 3 });
    const random = randomBytes(BLOCK);
    const r = seal(random, c);
    expect(readRecordHeader(r).flags).toBe(0);
    expect(openBlock(keys, ctx, r).equals(random)).toBe(true);
    const z = seal(Buffer.alloc(BLOCK), c);
    expect(readRecordHeader(z).flags).toBe(FLAG_ZERO);
    expect(openBlock(keys, ctx, z).equals(Buffer.alloc(BLOCK))).toBe(true);
  });

  it('compresses a block random in the middle but with zero-padded tails elsewhere (small .gz files)', () => {
    // Small compressed files in 4 KiB file system blocks: random bytes, then each file's
    // zero-padded tail; here one stretch of tails away from the middle of the block.
    const plain = randomBytes(BLOCK);
    plain.fill(0, 4096, 12288);
    const r = seal(plain, new BlockCompressor({ codec: 'zstd', level: 3 }));
    expect(readRecordHeader(r).flags).toBe(FLAG_ZSTD);
    expect(r.length).toBeLessThan(BLOCK - BLOCK / 16);
    expect(openBlock(keys, ctx, r).equals(plain)).toBe(true);
  });

  it('counts what it compressed, for the adaptive level', () => {
    const c = new BlockCompressor({ codec: 'zstd', level: 3 });
    c.compress(textBlock());
    c.compress(randomBytes(BLOCK));
    const s = c.takeStats();
    expect(s.plainBytes).toBe(2 * BLOCK);
    expect(s.packedBytes).toBeGreaterThan(BLOCK);
    expect(s.packedBytes).toBeLessThan(2 * BLOCK);
    expect(s.seconds).toBeGreaterThan(0);
    expect(c.takeStats().plainBytes).toBe(0);
  });

  it('refuses a record whose flag names another codec than its payload (block_corrupt)', () => {
    const plain = textBlock();
    const z = seal(plain, new BlockCompressor({ codec: 'zstd', level: 3 }));
    // Flip the flag to lz4: the AAD binds the flags, so authentication fails first.
    z.writeUInt8(FLAG_LZ4, 6);
    expect(() => openBlock(keys, ctx, z)).toThrow(/does not authenticate/);
  });
});
