// Per-block compression before encryption: lz4 (older stores) or zstd at a level the caller sets.
import { compressSync, uncompressSync } from 'lz4-napi';
import zstd from 'zstd-napi/binding.js';

/** Record flags naming the codec; a record carries at most one. */
export const FLAG_LZ4 = 2;
export const FLAG_ZSTD = 4;

export type CompressorSetting = { codec: 'lz4' } | { codec: 'zstd'; level: number };

export interface CompressionStats {
  /** Bytes handed to `compress` (incompressible and skipped blocks included). */
  plainBytes: number;
  /** Bytes that came out (the plain length where a block went as it was). */
  packedBytes: number;
  /** Time spent in `compress`, in seconds. */
  seconds: number;
}

const SAMPLE_BYTES = 512;
const SAMPLES = 4;
const seen = new Uint8Array(256);

/** Distinct byte values among the SAMPLE_BYTES bytes of `plain` from `at`. */
function distinctBytes(plain: Buffer, at: number): number {
  seen.fill(0);
  let distinct = 0;
  for (let i = at; i < at + SAMPLE_BYTES; i++) {
    const b = plain[i] as number;
    if (seen[b] === 0) {
      seen[b] = 1;
      distinct++;
    }
  }
  return distinct;
}

/**
 * Whether a block is worth a compression pass. Random-looking bytes (encrypted or
 * already compressed data, media) use nearly every byte value: 512 random bytes
 * hold about 220 distinct values, text and structured data far fewer. It looks
 * at 512 bytes in the middle of each quarter of the block and says yes if any
 * of them holds fewer than 200: a block of small compressed files (a docs tree
 * of .gz files) is random in places and zero-padded file tails in others, and
 * zstd takes 1/8 off it (measured on bench:wan's disk: one sample from the
 * middle sent 5 MiB of 138 changed MiB plain that zstd would have shortened).
 * Counting costs microseconds, against hundreds for a compression pass.
 */
export function worthCompressing(plain: Buffer): boolean {
  if (plain.length <= SAMPLE_BYTES * SAMPLES) return true;
  const quarter = plain.length / SAMPLES;
  for (let k = 0; k < SAMPLES; k++) {
    const at = Math.floor(quarter * k + quarter / 2) - SAMPLE_BYTES / 2;
    if (distinctBytes(plain, at) < 200) return true;
  }
  return false;
}

/**
 * Compresses blocks one at a time with one reusable zstd context, keeping a
 * result only when it saves at least 1/16, and counts what it did so the agent
 * can weigh its compression rate against its send rate. Not shared between
 * concurrent users: the payload it returns lives in its scratch buffer until
 * the next call.
 */
export class BlockCompressor {
  private readonly cctx = new zstd.CCtx();
  private scratch = Buffer.alloc(0);
  private plainBytes = 0;
  private packedBytes = 0;
  private ns = 0n;
  codec: 'lz4' | 'zstd';
  level: number;

  constructor(setting: CompressorSetting) {
    this.codec = setting.codec;
    this.level = setting.codec === 'zstd' ? setting.level : 0;
  }

  /**
   * The flag and payload for one non-zero block, or undefined when the block is
   * better sent as it is. The payload is valid until the next call.
   */
  compress(plain: Buffer): { flag: number; payload: Buffer } | undefined {
    const t0 = process.hrtime.bigint();
    const out = this.pack(plain);
    this.ns += process.hrtime.bigint() - t0;
    this.plainBytes += plain.length;
    this.packedBytes += out ? out.payload.length : plain.length;
    return out;
  }

  private pack(plain: Buffer): { flag: number; payload: Buffer } | undefined {
    if (!worthCompressing(plain)) return undefined;
    const limit = plain.length - (plain.length >> 4);
    if (this.codec === 'lz4') {
      const packed = compressSync(plain);
      return packed.length <= limit ? { flag: FLAG_LZ4, payload: packed } : undefined;
    }
    const bound = zstd.compressBound(plain.length);
    if (this.scratch.length < bound) this.scratch = Buffer.allocUnsafe(bound);
    const n = this.cctx.compress(this.scratch, plain, this.level);
    return n <= limit ? { flag: FLAG_ZSTD, payload: this.scratch.subarray(0, n) } : undefined;
  }

  /** What was compressed since the last call, and resets the counts. */
  takeStats(): CompressionStats {
    const s = {
      plainBytes: this.plainBytes,
      packedBytes: this.packedBytes,
      seconds: Number(this.ns) / 1e9,
    };
    this.plainBytes = 0;
    this.packedBytes = 0;
    this.ns = 0n;
    return s;
  }
}

let decoder: InstanceType<typeof zstd.DCtx> | undefined;

/**
 * Decompresses an authenticated payload straight into `out`, whose length is
 * the block's plain length; throws a RangeError when it does not fill `out` exactly.
 */
export function decompressInto(flags: number, payload: Buffer, out: Buffer): void {
  if (flags & FLAG_ZSTD) {
    decoder ??= new zstd.DCtx();
    const size = zstd.getFrameContentSize(payload);
    if (size !== out.length)
      throw new RangeError(`zstd frame holds ${size} bytes, not ${out.length}`);
    const n = decoder.decompress(out, payload);
    if (n !== out.length) throw new RangeError(`zstd frame gave ${n} bytes, not ${out.length}`);
    return;
  }
  if (flags & FLAG_LZ4) {
    const plain = uncompressSync(payload);
    if (plain.length !== out.length)
      throw new RangeError(`lz4 payload gave ${plain.length} bytes, not ${out.length}`);
    plain.copy(out);
    return;
  }
  throw new RangeError(`flags ${flags} name no codec`);
}
