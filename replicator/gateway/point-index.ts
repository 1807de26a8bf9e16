import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../../core/atomic-file.js';
import { DrError, errorMessage, systemCode } from '../../core/errors.js';
import { MAC_BYTES } from '../crypto/volume-key.js';

/** Where one block of one volume lives: a record inside a segment file. */
export interface IndexEntry {
  volumeId: number;
  block: number;
  /** The batch the record arrived in. */
  seq: number;
  segment: number;
  /** Absolute offset of the record in its segment file. */
  offset: number;
  length: number;
  /** The keyed MAC of the block's plaintext, copied from the record header. */
  mac: Buffer;
  /**
   * Set when the block repeats another block's content (the agent sent a reference): the entry
   * points at that block's stored record, which arrived in batch `recordSeq`. Readers open the
   * record as its own block's; `seq` stays the batch that said the block changed.
   */
  recordSeq?: number;
}

const MAGIC = Buffer.from('LPX1');
/** An index with references: each entry ends with recordSeq u64 (0: the entry's own record). */
const MAGIC_REFS = Buffer.from('LPX2');
/** magic | pointId u32 | count u32 */
const HEAD_BYTES = 4 + 4 + 4;
/** volumeId u16 | block u32 | seq u64 | segment u32 | offset u64 | length u32 | mac[16] */
export const ENTRY_BYTES = 2 + 4 + 8 + 4 + 8 + 4 + MAC_BYTES;
const REF_ENTRY_BYTES = ENTRY_BYTES + 8;
const SUM_BYTES = 32;

export function compareEntries(a: IndexEntry, b: IndexEntry): number {
  return a.volumeId - b.volumeId || a.block - b.block;
}

/**
 * Merges two entry lists sorted by (volume, block); where both hold a block,
 * the entry of `top` wins. The result is sorted too.
 */
export function overlayEntries(
  base: readonly IndexEntry[],
  top: readonly IndexEntry[],
): IndexEntry[] {
  if (top.length === 0) return base.slice();
  if (base.length === 0) return top.slice();
  const out: IndexEntry[] = [];
  let i = 0;
  let j = 0;
  while (i < base.length || j < top.length) {
    const a = base[i];
    const b = top[j];
    if (!b || (a && compareEntries(a, b) < 0)) {
      if (a) out.push(a);
      i++;
    } else {
      out.push(b);
      j++;
      if (a && compareEntries(a, b) === 0) i++;
    }
  }
  return out;
}

/**
 * Turns entries in arrival order into a delta: one entry per (volume, block),
 * the one with the highest seq, sorted by (volume, block).
 */
export function deltaOf<E extends IndexEntry>(entries: Iterable<E>): E[] {
  const best = new Map<number, E>();
  for (const e of entries) {
    const key = e.volumeId * 2 ** 32 + e.block;
    const held = best.get(key);
    if (!held || e.seq >= held.seq) best.set(key, e);
  }
  return [...best.values()].sort(compareEntries);
}

/** Writes LPX1 (as earlier releases read) unless an entry is a reference, then LPX2. */
export function encodePointIndex(pointId: number, entries: readonly IndexEntry[]): Buffer {
  const refs = entries.some((e) => e.recordSeq !== undefined);
  const size = refs ? REF_ENTRY_BYTES : ENTRY_BYTES;
  const out = Buffer.allocUnsafe(HEAD_BYTES + entries.length * size + SUM_BYTES);
  (refs ? MAGIC_REFS : MAGIC).copy(out, 0);
  out.writeUInt32BE(pointId, 4);
  out.writeUInt32BE(entries.length, 8);
  let o = HEAD_BYTES;
  for (const e of entries) {
    o = out.writeUInt16BE(e.volumeId, o);
    o = out.writeUInt32BE(e.block, o);
    o = out.writeBigUInt64BE(BigInt(e.seq), o);
    o = out.writeUInt32BE(e.segment, o);
    o = out.writeBigUInt64BE(BigInt(e.offset), o);
    o = out.writeUInt32BE(e.length, o);
    o += e.mac.copy(out, o, 0, MAC_BYTES);
    if (refs) o = out.writeBigUInt64BE(BigInt(e.recordSeq ?? 0), o);
  }
  createHash('sha256').update(out.subarray(0, o)).digest().copy(out, o);
  return out;
}

/** Parses a point index; `path` only names the file in errors. */
export function decodePointIndex(buf: Buffer, pointId: number, path: string): IndexEntry[] {
  const bad = (why: string) => corruptIndex(path, why);
  const magic = buf.subarray(0, 4);
  const refs = magic.equals(MAGIC_REFS);
  if (buf.length < HEAD_BYTES + SUM_BYTES || !(refs || magic.equals(MAGIC))) {
    throw bad('is not a point index');
  }
  const size = refs ? REF_ENTRY_BYTES : ENTRY_BYTES;
  const count = buf.readUInt32BE(8);
  if (buf.length !== HEAD_BYTES + count * size + SUM_BYTES) {
    throw bad(`is ${buf.length} bytes, but its header announces ${count} entries`);
  }
  const body = buf.subarray(0, buf.length - SUM_BYTES);
  if (!createHash('sha256').update(body).digest().equals(buf.subarray(body.length))) {
    throw bad('does not match its checksum');
  }
  if (buf.readUInt32BE(4) !== pointId) throw bad(`belongs to point ${buf.readUInt32BE(4)}`);
  const entries: IndexEntry[] = new Array(count);
  let o = HEAD_BYTES;
  for (let i = 0; i < count; i++) {
    const e: IndexEntry = {
      volumeId: buf.readUInt16BE(o),
      block: buf.readUInt32BE(o + 2),
      seq: Number(buf.readBigUInt64BE(o + 6)),
      segment: buf.readUInt32BE(o + 14),
      offset: Number(buf.readBigUInt64BE(o + 18)),
      length: buf.readUInt32BE(o + 26),
      mac: buf.subarray(o + 30, o + 30 + MAC_BYTES),
    };
    const recordSeq = refs ? Number(buf.readBigUInt64BE(o + ENTRY_BYTES)) : 0;
    if (recordSeq > 0) e.recordSeq = recordSeq;
    entries[i] = e;
    o += size;
  }
  return entries;
}

export async function readPointIndex(path: string, pointId: number): Promise<IndexEntry[]> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (err) {
    throw corruptIndex(path, `cannot be read (${systemCode(err) ?? errorMessage(err)})`, err);
  }
  return decodePointIndex(buf, pointId, path);
}

/** Writes a point index atomically (a crash leaves the old file or the new one). */
export async function writePointIndex(
  path: string,
  pointId: number,
  entries: readonly IndexEntry[],
): Promise<void> {
  await writeFileAtomic(path, encodePointIndex(pointId, entries), 0o600);
}

function corruptIndex(path: string, why: string, cause?: unknown): DrError {
  return new DrError(`point index ${path} ${why}`, {
    code: 'store_corrupt',
    subject: path,
    remedy:
      'restore that file from a backup of the gateway store; other recovery points are unaffected unless they are newer than it',
    cause,
  });
}
