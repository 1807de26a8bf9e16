/** Batch ingest: a batch from the app's lease holder is checked, refused while the disk is short of space, and made durable. */
import { statfs } from 'node:fs/promises';
import { DrError, errorMessage } from '../../core/errors.js';
import { decodeBatch } from '../transport/batch-codec.js';
import type { BatchAck } from '../transport/protocol.js';
import type { AgentLeases } from './agent-leases.js';
import type { GatewayStore } from './gateway-store.js';
import { heldApp } from './held-app.js';
import { badRequest } from './request-body.js';

export type BatchIngest = (
  app: string,
  sessionId: string | undefined,
  body: Buffer[],
) => Promise<BatchAck>;

export function createBatchIngest({
  store,
  leases,
  minFreeSpace,
  now,
  freeBytes = freeBytesOf,
}: {
  store: GatewayStore;
  leases: AgentLeases;
  /** New batches are refused (507) while the store's disk has less free space than this. */
  minFreeSpace: number;
  now: () => number;
  /** Free bytes of the file system holding `dir` (undefined when it cannot tell). */
  freeBytes?: (dir: string) => Promise<number | undefined>;
}): BatchIngest {
  // statfs once a second at most: a batch is 4 MiB, the reserve is far larger.
  let freeCache: { at: number; bytes: number | undefined } | undefined;
  const freeSpace = async (): Promise<number | undefined> => {
    if (!freeCache || now() - freeCache.at > 1000)
      freeCache = { at: now(), bytes: await freeBytes(store.dir) };
    return freeCache.bytes;
  };
  return async (app, sessionId, body) => {
    const a = heldApp(store, app);
    leases.holds(app, sessionId);
    let decoded: ReturnType<typeof decodeBatch>;
    try {
      decoded = decodeBatch(body);
    } catch (err) {
      throw badRequest(
        `batch refused: ${errorMessage(err)}`,
        'the agent resends it; nothing was stored',
      );
    }
    const vols = new Map(a.volumes().map((v) => [v.id, v]));
    for (const e of decoded.entries) {
      const v = vols.get(e.volumeId);
      if (!v || e.block * v.blockSize >= Math.max(v.size, 1)) {
        throw badRequest(
          `batch ${decoded.seq} names block ${e.block} of unknown volume #${e.volumeId}`,
          'restart the agent so it registers its volumes',
        );
      }
    }
    const free = await freeSpace();
    if (free !== undefined && free < minFreeSpace) {
      throw new DrError(
        `gateway store ${store.dir} has ${free} bytes free, below gateway.minFreeSpace`,
        {
          code: 'gateway_full',
          subject: store.dir,
          remedy:
            'free space on the gateway disk or lower the retention; the agent keeps the batch and retries',
        },
      );
    }
    const ack = await a.appendBatch(decoded.seq, body, decoded);
    const rt = leases.runtime(app);
    if (!ack.duplicate) {
      rt.bytesShipped += decoded.length;
      rt.recent.push([now(), decoded.length]);
      const byVolume = new Map<number, number>();
      for (const e of decoded.entries)
        byVolume.set(e.volumeId, (byVolume.get(e.volumeId) ?? 0) + e.length);
      for (const [id, bytes] of byVolume) rt.volumeRecent.push([now(), id, bytes]);
    }
    return { seq: decoded.seq, duplicate: ack.duplicate };
  };
}

async function freeBytesOf(dir: string): Promise<number | undefined> {
  try {
    const s = await statfs(dir);
    return s.bavail * s.bsize;
  } catch {
    // statfs is unsupported on some file systems: the write itself still catches ENOSPC.
    return undefined;
  }
}
