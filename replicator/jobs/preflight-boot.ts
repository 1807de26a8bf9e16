/** A failover's check of the candidate point's system volume, before replication is stopped. */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../core/log.js';
import type { KeyEncryptionKey } from '../crypto/key-encryption-key.js';
import type { Provider } from '../providers/provider.js';
import { withCacheLock } from '../recovery/cache-lock.js';
import { materialiseCached } from '../recovery/image-cache.js';
import { volumeOrder } from '../recovery/materialise-point.js';
import type { ReadParallelism } from '../recovery/read-parallelism.js';
import { restoreVolume } from '../recovery/restore-volume.js';
import type { GatewayClient } from '../transport/gateway-client.js';
import type { PointDetail } from '../transport/wire-types.js';

/** How long the check waits for a warmer (`dr warm`) to finish with the cache, as materialise does. */
const CACHE_WAIT_MS = 2 * 60_000;

export interface PreflightOptions {
  provider: Provider;
  client: GatewayClient;
  kek: KeyEncryptionKey;
  opId: string;
  app: string;
  /** The point the failover would use if it started now. */
  point: PointDetail;
  /** The operation's directory; the scratch image goes in `<dir>/preflight` and is removed. */
  dir: string;
  /** The app's image cache, when the worker keeps one: it is brought forward on the way. */
  cacheDir?: string;
  /** Ranges fetched at once and worker threads: dr.yaml's recovery.restoreParallel / restoreWorkers. */
  parallel: ReadParallelism;
  signal: AbortSignal;
  log: Logger;
}

/**
 * Brings only the system volume (the first) of the candidate point into the image cache (or a
 * scratch image without one) and asks the provider whether it can serve it. Nothing has changed yet when this throws: the agent still replicates
 * and the source is not fenced. Through the image cache, the failover's own materialise later
 * fetches only what arrived since. Resolves the provider's warnings.
 */
export async function preflightBoot(o: PreflightOptions): Promise<string[]> {
  const { provider } = o;
  const name = volumeOrder(o.point)[0];
  if (!provider.preflight || name === undefined) return [];
  const check = (path: string, size: number) =>
    (provider.preflight as NonNullable<Provider['preflight']>)({
      opId: o.opId,
      app: o.app,
      mode: 'failover',
      volumes: [{ name, path, size }],
      signal: o.signal,
      log: o.log,
    });
  if (o.cacheDir) {
    // Checked in the cache itself, under its lock (a warmer waits): no copy of the system
    // volume before the failover, and its own materialise finds the cache at this point.
    const cacheDir = o.cacheDir;
    const { size } = await materialiseCached({
      client: o.client,
      kek: o.kek,
      app: o.app,
      point: o.point,
      volume: name,
      cacheDir,
      to: '',
      handover: 'none',
      parallel: o.parallel,
      signal: o.signal,
    });
    const warnings = await withCacheLock(
      cacheDir,
      () => check(join(cacheDir, `${name}.img`), size),
      CACHE_WAIT_MS,
    );
    return warnings ?? [];
  }
  const scratch = join(o.dir, 'preflight');
  const to = join(scratch, 'system.img');
  try {
    await mkdir(scratch, { recursive: true, mode: 0o700 }); // plaintext, like every image
    const { size } = await restoreVolume({
      client: o.client,
      kek: o.kek,
      app: o.app,
      point: o.point,
      volume: name,
      to,
      force: true,
      durable: false,
      parallel: o.parallel,
      signal: o.signal,
    });
    return await check(to, size);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
