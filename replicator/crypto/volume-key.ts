import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { Blake3Hasher } from '@napi-rs/blake-hash';
import { DrError } from '../../core/errors.js';
import type { KeyEncryptionKey } from './key-encryption-key.js';

const WRAP_VERSION = 1;

/** The per-volume keys: one encrypts blocks, one computes the keyed MAC of their plaintext. */
export interface VolumeKeys {
  enc: Buffer;
  mac: Buffer;
  /** MAC of an all-zero block of the volume's block size: a block the store does not hold. */
  zeroMac: Buffer;
  blockSize: number;
  /** GCM nonces for blocks sealed under `enc` by this process. */
  nonces: NonceSource;
}

/**
 * Unique 96-bit GCM nonces without a random draw per block: 8 random bytes
 * fixed for this source, then a 32-bit counter; a new random prefix is drawn
 * before the counter could wrap. Collisions across processes need two equal
 * 64-bit random prefixes.
 */
export class NonceSource {
  private prefix = randomBytes(8);
  private counter = 0;

  next(): Buffer {
    if (this.counter === 0xffffffff) {
      this.prefix = randomBytes(8);
      this.counter = 0;
    }
    const nonce = Buffer.allocUnsafe(12);
    this.prefix.copy(nonce, 0);
    nonce.writeUInt32BE(this.counter++, 8);
    return nonce;
  }
}

export const MAC_BYTES = 16;

function wrapAad(app: string, volume: string): Buffer {
  return Buffer.from(`lifeboat-dek|${app}|${volume}`);
}

/** A fresh random data key, wrapped by the KEK: version | kek id | nonce | ciphertext | tag. */
export function createWrappedVolumeKey(kek: KeyEncryptionKey, app: string, volume: string): Buffer {
  const dataKey = randomBytes(32);
  const nonce = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', kek.key, nonce);
  c.setAAD(wrapAad(app, volume));
  const ct = Buffer.concat([c.update(dataKey), c.final()]);
  return Buffer.concat([Buffer.from([WRAP_VERSION]), kek.id, nonce, ct, c.getAuthTag()]);
}

export function unwrapVolumeKey(
  kek: KeyEncryptionKey,
  wrapped: Buffer,
  app: string,
  volume: string,
  blockSize: number,
): VolumeKeys {
  const subject = `${app}/${volume}`;
  if (wrapped.length !== 1 + 8 + 12 + 32 + 16 || wrapped[0] !== WRAP_VERSION) {
    throw new DrError(`the wrapped data key of ${subject} is malformed`, {
      code: 'store_corrupt',
      subject,
      remedy: 'restore the gateway store from a backup; this volume cannot be decrypted',
    });
  }
  const kekId = wrapped.subarray(1, 9);
  if (!kekId.equals(kek.id)) {
    throw new DrError(
      `the key encryption key in this DR_HOME (id ${kek.id.toString('hex')}) is not the one ${subject} was protected with (id ${kekId.toString('hex')})`,
      {
        code: 'key_mismatch',
        subject,
        remedy: 'copy keys/kek.key from the home that protected this app',
      },
    );
  }
  let dataKey: Buffer;
  try {
    const d = createDecipheriv('aes-256-gcm', kek.key, wrapped.subarray(9, 21));
    d.setAAD(wrapAad(app, volume));
    d.setAuthTag(wrapped.subarray(53, 69));
    dataKey = Buffer.concat([d.update(wrapped.subarray(21, 53)), d.final()]);
  } catch (err) {
    throw new DrError(
      `the data key of ${subject} does not authenticate under this key encryption key`,
      {
        code: 'key_mismatch',
        subject,
        remedy: 'copy keys/kek.key from the home that protected this app',
        cause: err,
      },
    );
  }
  const enc = Buffer.from(
    hkdfSync('sha256', dataKey, Buffer.alloc(0), 'lifeboat block encryption', 32),
  );
  const mac = Buffer.from(hkdfSync('sha256', dataKey, Buffer.alloc(0), 'lifeboat block mac', 32));
  const zeroMac = blockMac(mac, Buffer.alloc(blockSize));
  return { enc, mac, zeroMac, blockSize, nonces: new NonceSource() };
}

/** A volume's keys from the gateway's description of it (its wrapped data key in base64). */
export function volumeKeysOf(
  kek: KeyEncryptionKey,
  app: string,
  info: { name: string; wrappedKey: string; blockSize: number },
): VolumeKeys {
  return unwrapVolumeKey(
    kek,
    Buffer.from(info.wrappedKey, 'base64'),
    app,
    info.name,
    info.blockSize,
  );
}

/**
 * Keyed MAC of a block's plaintext: keyed BLAKE3, first 128 bits. BLAKE3 is
 * used for its speed (about 3x HMAC-SHA-256 here), since the scan tracker
 * computes one MAC per block of the whole volume every cycle. One hasher per
 * key is kept and reset between blocks.
 */
export function blockMac(macKey: Buffer, plain: Buffer): Buffer {
  let hasher = hashers.get(macKey);
  if (!hasher) {
    hasher = Blake3Hasher.newKeyed(macKey);
    hashers.set(macKey, hasher);
  }
  hasher.update(plain);
  const mac = hasher.digestBuffer().subarray(0, MAC_BYTES);
  hasher.reset();
  return mac;
}

const hashers = new WeakMap<Buffer, Blake3Hasher>();

/**
 * Keyed digest of a whole volume at a point: its size and the MAC of every
 * block in order. A store that drops, swaps or rolls back any block fails it.
 */
export function volumeDigest(macKey: Buffer, size: number, macs: Buffer): Buffer {
  return createHmac('sha256', macKey)
    .update(`lifeboat-volume-digest|${size}|`)
    .update(macs)
    .digest();
}
