/** A failover's check of the candidate point's system volume, before replication is stopped. */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../core/log.js';
import type { KeyEncryptionKey } from '../crypto/key-encryption-key.js';
import type { Provider } from '../providers/provider.js';
import { materialiseCached } from '../recovery/image-cache.js';
import { volumeOrder } from '../recovery/materialise-point.js';
import { restoreVolume } from '../recovery/restore-volume.js';
import type { GatewayClient } from '../transport/gateway-client.js';
import type { PointDetail } from '../transport/wire-types.js';

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
  signal: AbortSignal;
  log: Logger;
}

/**
 * Materialises only the system volume (the first) of the candidate point and asks the provider
 * whether it can serve it. Nothing has changed yet when this throws: the agent still replicates
 * and the source is not fenced. Through the image cache, the failover's own materialise later
 * fetches only what arrived since. Resolves the provider's warnings.
 */
export async function preflightBoot(o: PreflightOptions): Promise<string[]> {
  const { provider } = o;
  const name = volumeOrder(o.point)[0];
  if (!provider.preflight || name === undefined) return [];
  const scratch = join(o.dir, 'preflight');
  const to = join(scratch, 'system.img');
  try {
    await mkdir(scratch, { recursive: true, mode: 0o700 }); // plaintext, like every image
    const { size } = o.cacheDir
      ? await materialiseCached({
          client: o.client,
          kek: o.kek,
          app: o.app,
          point: o.point,
          volume: name,
          cacheDir: o.cacheDir,
          to,
          handover: 'copy',
          signal: o.signal,
        })
      : await restoreVolume({
          client: o.client,
          kek: o.kek,
          app: o.app,
          point: o.point,
          volume: name,
          to,
          force: true,
          durable: false,
          signal: o.signal,
        });
    return await provider.preflight({
      opId: o.opId,
      app: o.app,
      mode: 'failover',
      volumes: [{ name, path: to, size }],
      signal: o.signal,
      log: o.log,
    });
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
