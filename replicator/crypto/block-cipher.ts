import { createCipheriv, createDecipheriv } from 'node:crypto';
import { DrError } from '../../core/errors.js';
import { BlockCompressor, decompressInto, FLAG_LZ4, FLAG_ZSTD } from './block-compression.js';
import { blockMac, MAC_BYTES, type VolumeKeys } from './volume-key.js';

export const FLAG_ZERO = 1;
/**
 * The block repeats one the gateway already holds for the volume: the record carries the source
 * block's index (u32, in clear so the gateway can resolve it) and a tag binding it, no data.
 */
export const FLAG_REF = 8;
export { FLAG_LZ4, FLAG_ZSTD };

/**
 * One encrypted block as it travels and as the gateway stores it:
 * volumeId u16 | block u32 | flags u8 | plainLen u32 | mac[16] | nonce[12] | ctLen u32 | ct (tag last).
 */
export const RECORD_HEADER_BYTES = 2 + 4 + 1 + 4 + MAC_BYTES + 12 + 4;
const TAG_BYTES = 16;

export interface BlockContext {
  app: string;
  volume: string;
  volumeId: number;
  block: number;
  /** The batch sequence number the block first travelled in. */
  seq: number;
  /**
   * The block whose record this is, when block `block` repeats it (a reference the gateway
   * resolved): the record is opened as that block's, under its own `seq`.
   */
  recordBlock?: number | undefined;
}

export interface RecordHeader {
  volumeId: number;
  block: number;
  flags: number;
  plainLen: number;
  mac: Buffer;
  nonce: Buffer;
  ctLen: number;
}

/** Binds a ciphertext to its app, volume, block, sequence and shape, so it cannot be moved or replayed. */
function aad(ctx: BlockContext, flags: number, plainLen: number, block = ctx.block): Buffer {
  return Buffer.from(
    `lifeboat-block-v1\0${ctx.app}\0${ctx.volume}\0${block}\0${ctx.seq}\0${flags}\0${plainLen}`,
  );
}

/** Bytes of a reference record after its header: source block u32, then the tag. */
export const REF_BODY_BYTES = 4 + 16;

/**
 * A record saying block `ctx.block` holds the same plaintext (MAC `mac`, `plainLen` bytes) as
 * block `source` of the same volume, which the gateway already holds. No data travels: the
 * gateway resolves it to the source's stored record, and readers open that record. The tag binds
 * the source, so the agent's claim cannot be altered in transit or at rest.
 */
export function sealReference(
  keys: VolumeKeys,
  ctx: BlockContext,
  plainLen: number,
  mac: Buffer,
  source: number,
): Buffer {
  const out = Buffer.allocUnsafe(RECORD_HEADER_BYTES + REF_BODY_BYTES);
  const nonce = keys.nonces.next();
  let o = out.writeUInt16BE(ctx.volumeId, 0);
  o = out.writeUInt32BE(ctx.block, o);
  o = out.writeUInt8(FLAG_REF, o);
  o = out.writeUInt32BE(plainLen, o);
  o += mac.copy(out, o, 0, MAC_BYTES);
  o += nonce.copy(out, o);
  o = out.writeUInt32BE(REF_BODY_BYTES, o);
  o = out.writeUInt32BE(source, o);
  const c = createCipheriv('aes-256-gcm', keys.enc, nonce);
  c.setAAD(Buffer.concat([aad(ctx, FLAG_REF, plainLen), out.subarray(o - 4, o)]));
  c.final();
  c.getAuthTag().copy(out, o);
  return out;
}

/** The source block a reference record names (the record is one: `flags & FLAG_REF`). */
export function referenceSource(record: Buffer, offset = 0): number {
  return record.readUInt32BE(offset + RECORD_HEADER_BYTES);
}

function isZero(buf: Uint8Array): boolean {
  // Compare 8 bytes at a time where alignment allows; blocks are multiples of 4 KiB.
  if (buf.byteLength % 8 === 0 && buf.byteOffset % 8 === 0) {
    const words = new BigUint64Array(buf.buffer, buf.byteOffset, buf.byteLength / 8);
    for (let i = 0; i < words.length; i++) if (words[i] !== 0n) return false;
    return true;
  }
  for (let i = 0; i < buf.length; i++) if (buf[i] !== 0) return false;
  return true;
}

/** What `sealBlock` compresses with when its caller names no compressor. */
let defaultCompressor: BlockCompressor | undefined;

/**
 * Compresses (with `compressor`: zstd or lz4, kept only when it saves at least
 * 1/16), encrypts with AES-256-GCM under a unique nonce, and frames one block.
 * `mac` is the keyed MAC of `plain`, computed by the caller that already needed
 * it for change detection. Returns the record in parts (header, ciphertext,
 * tag) so batches go out without a copy.
 */
export function sealBlockParts(
  keys: VolumeKeys,
  ctx: BlockContext,
  plain: Buffer,
  mac: Buffer,
  compressor?: BlockCompressor,
): Buffer[] {
  let flags = 0;
  let payload: Buffer = plain;
  if (isZero(plain)) {
    flags = FLAG_ZERO;
    payload = Buffer.alloc(0);
  } else {
    defaultCompressor ??= new BlockCompressor({ codec: 'zstd', level: 3 });
    const packed = (compressor ?? defaultCompressor).compress(plain);
    if (packed) {
      flags = packed.flag;
      payload = packed.payload;
    }
  }
  const nonce = keys.nonces.next();
  const c = createCipheriv('aes-256-gcm', keys.enc, nonce);
  c.setAAD(aad(ctx, flags, plain.length));
  const ctLen = payload.length + TAG_BYTES;
  const head = Buffer.allocUnsafe(RECORD_HEADER_BYTES);
  let o = 0;
  o = head.writeUInt16BE(ctx.volumeId, o);
  o = head.writeUInt32BE(ctx.block, o);
  o = head.writeUInt8(flags, o);
  o = head.writeUInt32BE(plain.length, o);
  o += mac.copy(head, o, 0, MAC_BYTES);
  o += nonce.copy(head, o);
  head.writeUInt32BE(ctLen, o);
  const ct = c.update(payload);
  const rest = c.final(); // empty for GCM, kept for form
  return rest.length > 0 ? [head, ct, rest, c.getAuthTag()] : [head, ct, c.getAuthTag()];
}

/** `sealBlockParts` as one buffer. */
export function sealBlock(
  keys: VolumeKeys,
  ctx: BlockContext,
  plain: Buffer,
  mac: Buffer,
  compressor?: BlockCompressor,
): Buffer {
  return Buffer.concat(sealBlockParts(keys, ctx, plain, mac, compressor));
}

/** Reads a record header; throws when the bytes cannot be one. */
export function readRecordHeader(buf: Buffer, offset = 0): RecordHeader {
  if (buf.length - offset < RECORD_HEADER_BYTES) throw new RangeError('record header cut short');
  let o = offset;
  const volumeId = buf.readUInt16BE(o);
  o += 2;
  const block = buf.readUInt32BE(o);
  o += 4;
  const flags = buf.readUInt8(o);
  o += 1;
  const plainLen = buf.readUInt32BE(o);
  o += 4;
  const mac = buf.subarray(o, o + MAC_BYTES);
  o += MAC_BYTES;
  const nonce = buf.subarray(o, o + 12);
  o += 12;
  const ctLen = buf.readUInt32BE(o);
  if (ctLen < TAG_BYTES || (flags & ~(FLAG_ZERO | FLAG_LZ4 | FLAG_ZSTD | FLAG_REF)) !== 0) {
    throw new RangeError('record header is malformed');
  }
  if (flags & FLAG_REF && (flags !== FLAG_REF || ctLen !== REF_BODY_BYTES)) {
    throw new RangeError('reference record is malformed');
  }
  return { volumeId, block, flags, plainLen, mac, nonce, ctLen };
}

export function recordLength(header: RecordHeader): number {
  return RECORD_HEADER_BYTES + header.ctLen;
}

/**
 * Authenticates, decrypts and decompresses a record, then checks the plaintext
 * against its keyed MAC. Any mismatch throws `block_corrupt` naming the block;
 * no unauthenticated byte is ever returned.
 */
export function openBlock(keys: VolumeKeys, ctx: BlockContext, record: Buffer): Buffer {
  const where = `${ctx.app}/${ctx.volume} block ${ctx.block}`;
  const own = ctx.recordBlock ?? ctx.block;
  const fail = (why: string, cause?: unknown): never => {
    throw new DrError(`${where}: ${why}`, {
      code: 'block_corrupt',
      subject: where,
      remedy:
        'restore an older recovery point, or re-sync the volume from the source (`dr agent --once`)',
      cause,
    });
  };
  let h: RecordHeader;
  try {
    h = readRecordHeader(record);
  } catch (err) {
    return fail('record is malformed', err);
  }
  if (h.volumeId !== ctx.volumeId || h.block !== own) {
    fail(`the store holds block ${h.block} of volume #${h.volumeId} in its place`);
  }
  // The gateway resolves references to the record they name; one left unresolved holds no data.
  if (h.flags & FLAG_REF) fail('the store holds an unresolved reference, not the block');
  if (record.length < RECORD_HEADER_BYTES + h.ctLen) fail('record is cut short');
  const ct = record.subarray(RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + h.ctLen - TAG_BYTES);
  const tag = record.subarray(
    RECORD_HEADER_BYTES + h.ctLen - TAG_BYTES,
    RECORD_HEADER_BYTES + h.ctLen,
  );
  let payload: Buffer;
  try {
    const d = createDecipheriv('aes-256-gcm', keys.enc, h.nonce);
    d.setAAD(aad(ctx, h.flags, h.plainLen, own));
    d.setAuthTag(tag);
    const head = d.update(ct);
    const tail = d.final(); // empty for GCM; it is also where the tag is checked
    payload = tail.length === 0 ? head : Buffer.concat([head, tail]);
  } catch (err) {
    return fail('ciphertext does not authenticate (tampered, moved or replayed)', err);
  }
  let plain: Buffer;
  if (h.flags & FLAG_ZERO) plain = Buffer.alloc(h.plainLen);
  else if (h.flags & (FLAG_LZ4 | FLAG_ZSTD)) {
    plain = Buffer.allocUnsafe(h.plainLen);
    try {
      decompressInto(h.flags, payload, plain);
    } catch (err) {
      return fail('compressed payload does not decompress', err);
    }
  } else plain = payload;
  if (plain.length !== h.plainLen)
    fail(`plaintext is ${plain.length} bytes, expected ${h.plainLen}`);
  // A zero block's MAC is known: no need to hash 64 KiB of zeros again.
  const zeroBlock = h.flags & FLAG_ZERO && h.plainLen === keys.blockSize;
  if (!(zeroBlock ? keys.zeroMac : blockMac(keys.mac, plain)).equals(h.mac))
    fail('plaintext does not match its keyed MAC');
  return plain;
}
