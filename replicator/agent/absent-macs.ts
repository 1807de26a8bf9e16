import { blockMac, MAC_BYTES, type VolumeKeys } from '../crypto/volume-key.js';

/** MACs of a volume the DR site holds nothing of: every block reads as zeros. */
export function absentMacs(keys: VolumeKeys, size: number): Buffer {
  const blocks = Math.ceil(size / keys.blockSize);
  const out = Buffer.allocUnsafe(blocks * MAC_BYTES);
  for (let b = 0; b < blocks; b++) keys.zeroMac.copy(out, b * MAC_BYTES);
  const tail = size % keys.blockSize;
  if (tail > 0) blockMac(keys.mac, Buffer.alloc(tail)).copy(out, (blocks - 1) * MAC_BYTES);
  return out;
}
