/** Signed recovery-point records: what the agent vouches for, chained, under a key the gateway never holds. */
import { createHash, createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { appNameSchema, volumeNameSchema } from '../../core/names.js';
import type { KeyEncryptionKey } from './key-encryption-key.js';

/**
 * What the agent signs for each point. `prev` is the hash of the record of
 * the point before it (null for an app's first point), so the records form a
 * chain the gateway cannot reorder, relabel or cut and splice.
 */
export interface PointRecord {
  v: 1;
  app: string;
  id: number;
  seqFrom: number;
  seqTo: number;
  /** ISO 8601, on the gateway's clock (the agent applies its measured offset). */
  time: string;
  label: 'fuzzy' | 'crash-consistent' | 'app-consistent';
  /** Each volume's size and keyed digest at the point. */
  volumes: Record<string, { size: number; digest: string }>;
  prev: string | null;
}

export interface SignedRecord {
  record: PointRecord;
  /** HMAC-SHA-256 of the canonical record under the app's point key, hex. */
  sig: string;
}

const count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const hex64 = z.string().regex(/^[0-9a-f]{64}$/);

/** The shape of a record as it arrives over the wire or from a catalog (no trust implied). */
export const pointRecordSchema = z.object({
  v: z.literal(1),
  app: appNameSchema,
  id: count.min(1),
  seqFrom: count,
  seqTo: count,
  time: z.iso.datetime(),
  label: z.enum(['fuzzy', 'crash-consistent', 'app-consistent']),
  volumes: z.record(volumeNameSchema, z.object({ size: count, digest: z.string().max(128) })),
  prev: hex64.nullable(),
});
export const signatureSchema = hex64;

/** The key that signs an app's point records: derived from the KEK, so the gateway cannot compute it. */
export function pointSigningKey(kek: KeyEncryptionKey, app: string): Buffer {
  return Buffer.from(
    hkdfSync('sha256', kek.key, Buffer.alloc(0), `lifeboat point record|${app}`, 32),
  );
}

/** The record's bytes as signed and hashed: fixed key order, volumes sorted by name. */
export function canonicalRecord(r: PointRecord): Buffer {
  const volumes = Object.keys(r.volumes)
    .sort()
    .map((name) => {
      const v = r.volumes[name] as { size: number; digest: string };
      return [name, v.size, v.digest];
    });
  return Buffer.from(
    JSON.stringify([
      'lifeboat-point',
      r.v,
      r.app,
      r.id,
      r.seqFrom,
      r.seqTo,
      r.time,
      r.label,
      volumes,
      r.prev,
    ]),
  );
}

export function signRecord(key: Buffer, record: PointRecord): SignedRecord {
  return { record, sig: createHmac('sha256', key).update(canonicalRecord(record)).digest('hex') };
}

/** Whether `sig` is the record's signature under `key` (compared in constant time). */
export function signatureValid(key: Buffer, record: PointRecord, sig: string): boolean {
  const want = createHmac('sha256', key).update(canonicalRecord(record)).digest();
  const got = Buffer.from(sig, 'hex');
  return got.length === want.length && timingSafeEqual(got, want);
}

/** The hash a following record names as `prev`. */
export function recordHash(record: PointRecord): string {
  return createHash('sha256').update(canonicalRecord(record)).digest('hex');
}
