import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../../../core/log.js';
import {
  openBlock,
  readRecordHeader,
  sealBlock,
  sealReference,
} from '../../../../replicator/crypto/block-cipher.js';
import {
  createKeyEncryptionKeyFile,
  type KeyEncryptionKey,
  loadKeyEncryptionKey,
} from '../../../../replicator/crypto/key-encryption-key.js';
import {
  blockMac,
  createWrappedVolumeKey,
  unwrapVolumeKey,
  type VolumeKeys,
} from '../../../../replicator/crypto/volume-key.js';
import type {
  AppStore,
  BlockStore,
  IndexEntry,
  VolumeMeta,
} from '../../../../replicator/gateway/block-store.js';
import {
  type DecodedBatch,
  decodeBatch,
  encodeBatch,
} from '../../../../replicator/transport/batch-codec.js';

export const APP = 'shop';
export const BLOCK = 4096;

/** A temp folder, a real KEK and helpers that make real sealed batches. */
export interface Fixture {
  root: string;
  storeDir: string;
  kek: KeyEncryptionKey;
  wrap(volume: string): Buffer;
  cleanup(): Promise<void>;
}

export async function makeFixture(): Promise<Fixture> {
  const root = await mkdtemp(join(tmpdir(), 'lifeboat-store-'));
  await createKeyEncryptionKeyFile(join(root, 'kek.key'));
  const kek = await loadKeyEncryptionKey(join(root, 'kek.key'));
  return {
    root,
    storeDir: join(root, 'store'),
    kek,
    wrap: (volume) => createWrappedVolumeKey(kek, APP, volume),
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
}

export function keysOf(fx: Fixture, v: VolumeMeta): VolumeKeys {
  return unwrapVolumeKey(fx.kek, v.wrappedKey, APP, v.name, v.blockSize);
}

/** Registers volumes `disk` and `logs` (16 blocks each) and returns their metas. */
export async function registerTwo(
  fx: Fixture,
  app: AppStore,
): Promise<{ disk: VolumeMeta; logs: VolumeMeta }> {
  const [disk, logs] = await app.registerVolumes([
    { name: 'disk', blockSize: BLOCK, size: 16 * BLOCK, wrappedKey: fx.wrap('disk') },
    { name: 'logs', blockSize: BLOCK, size: 16 * BLOCK, wrappedKey: fx.wrap('logs') },
  ]);
  if (!disk || !logs) throw new Error('registerVolumes returned fewer volumes than proposed');
  return { disk, logs };
}

/** The store's app under test; fails the test when the store does not hold it. */
export function appOf(store: BlockStore): AppStore {
  const app = store.app(APP);
  if (!app) throw new Error(`the store does not hold app ${APP}`);
  return app;
}

export interface Written {
  volume: VolumeMeta;
  block: number;
  plain: Buffer;
}

/** A real batch: each block's plaintext is random (incompressible), sealed under the volume's key. */
export function makeBatch(
  fx: Fixture,
  seq: number,
  blocks: Array<{ volume: VolumeMeta; block: number; plain?: Buffer; source?: number }>,
): { bytes: Buffer; decoded: DecodedBatch; written: Written[] } {
  const written: Written[] = [];
  const records = blocks.map(({ volume, block, plain = randomBytes(BLOCK), source }) => {
    const keys = keysOf(fx, volume);
    written.push({ volume, block, plain });
    const ctx = { app: APP, volume: volume.name, volumeId: volume.id, block, seq };
    const mac = blockMac(keys.mac, plain);
    // With `source`, the block goes as a reference to it (`plain` is then its content).
    return source === undefined
      ? sealBlock(keys, ctx, plain, mac)
      : sealReference(keys, ctx, plain.length, mac, source);
  });
  const bytes = Buffer.concat(encodeBatch(seq, records));
  return { bytes, decoded: decodeBatch(bytes), written };
}

/** Appends a made batch and remembers the newest plaintext of each block in `truth`. */
export async function append(
  fx: Fixture,
  app: AppStore,
  seq: number,
  blocks: Array<{ volume: VolumeMeta; block: number; plain?: Buffer; source?: number }>,
  truth?: Map<string, Buffer>,
): Promise<{ duplicate: boolean }> {
  const b = makeBatch(fx, seq, blocks);
  const ack = await app.appendBatch(seq, b.bytes, b.decoded);
  for (const w of b.written) truth?.set(`${w.volume.name}:${w.block}`, w.plain);
  return ack;
}

/** Decrypts every entry of a volume; fails the test if any record does not authenticate. */
export async function plaintexts(
  fx: Fixture,
  app: AppStore,
  volume: VolumeMeta,
  entries: IndexEntry[],
): Promise<Map<number, Buffer>> {
  const keys = keysOf(fx, volume);
  const out = new Map<number, Buffer>();
  for (const e of entries) {
    const record = await app.readRecord(e);
    // A repeated block's entry points at the record it repeats, opened as that block's.
    const ref = e.recordSeq !== undefined;
    const ctx = {
      app: APP,
      volume: volume.name,
      volumeId: volume.id,
      block: e.block,
      seq: e.recordSeq ?? e.seq,
      recordBlock: ref ? readRecordHeader(record).block : undefined,
    };
    out.set(e.block, openBlock(keys, ctx, record));
  }
  return out;
}

/** Every kept point's records, byte for byte, keyed `point/volume/block`. */
export async function snapshot(app: AppStore): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  await app.withReadLock(async () => {
    for (const p of app.points()) {
      for (const v of app.volumes()) {
        for (const e of await app.pointEntries(p.id, v.name)) {
          out.set(`${p.id}/${v.name}/${e.block}`, await app.readRecord(e));
        }
      }
    }
  });
  return out;
}

/** A logger whose lines the test can read. */
export function capturingLog(): { log: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  return { log: createLogger({ level: 'debug', destination }), lines };
}

export const volumesAt = (
  metas: Record<string, VolumeMeta>,
): Record<string, { size: number; digest: string }> =>
  Object.fromEntries(
    Object.values(metas).map((m) => [m.name, { size: m.size, digest: `digest-of-${m.name}` }]),
  );

/** Records read through any replica's spans (a bucket reader, a holder), as `plaintexts` takes them. */
export const recordsVia = (r: {
  readSpan(segment: number, offset: number, length: number): Promise<Buffer>;
}): AppStore =>
  ({
    readRecord: (e: IndexEntry) => r.readSpan(e.segment, e.offset, e.length),
  }) as unknown as AppStore;
