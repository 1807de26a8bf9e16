import { Blake3Hasher } from '@napi-rs/blake-hash';

/**
 * Checksum of a segment frame's payload: the first 32 bits of BLAKE3 over its
 * parts. It only has to tell a torn or damaged write from a whole one (the
 * records inside carry their own GCM tags); BLAKE3 runs about three times as
 * fast as zlib's CRC-32 here, and every stored byte passes through it.
 */
export function frameChecksum(parts: Uint8Array | readonly Uint8Array[]): number {
  const hasher = new Blake3Hasher();
  if (parts instanceof Uint8Array) hasher.update(asBuffer(parts));
  else for (const p of parts) hasher.update(asBuffer(p));
  return hasher.digestBuffer().readUInt32BE(0);
}

function asBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}
