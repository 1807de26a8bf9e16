/** A whole point served on demand (every volume over one FUSE mount), hydrating behind, held by this worker until cleanup. */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { KeyEncryptionKey } from '../crypto/key-encryption-key.js';
import type { MaterialisedVolume } from '../providers/provider.js';
import type { GatewayClient } from '../transport/gateway-client.js';
import type { PointDetail } from '../transport/wire-types.js';
import { type MountedVolumes, mountVolumes, unmountStale } from './fuse-mount.js';
import type { HydrationState } from './on-demand-types.js';
import { OnDemandVolume } from './on-demand-volume.js';
import type { ReadParallelism } from './read-parallelism.js';

export interface InstantOptions {
  /** A client for this recovery alone: it is closed when the recovery is released. */
  client: GatewayClient;
  kek: KeyEncryptionKey;
  app: string;
  point: PointDetail;
  /** The operation's directory: `<dir>/instant/` is the mount, `<dir>/<volume>.local` each local copy. */
  dir: string;
  log: Logger;
  retryForMs?: number;
  /** Ranges and worker threads hydration copies with, as a full restore (recovery.restoreParallel/-Workers). */
  parallel?: ReadParallelism | undefined;
}

/** How hydration went, for an operation's result. */
export interface HydrationSummary {
  /** From serving to whole, ms. */
  ms: number;
  /** When the recovery stopped depending on the gateway (ISO time). */
  independentAt: string;
  bytes: number;
  /** Fetches retried while the gateway could not be reached. */
  retries: number;
}

export interface InstantRecovery {
  volumes: MaterialisedVolume[];
  /** Every volume's progress. */
  state(): HydrationState[];
  /** Fraction of all blocks local, 0..1. */
  fraction(): number;
  /**
   * Starts copying the blocks no read has fetched yet (once; later calls do nothing). Until then
   * only the server's reads fetch: the hydrator would take the worker's event loop and the
   * gateway from the launch and the health check, so the operation starts it once healthy.
   */
  startHydrating(): void;
  /** Resolves when every volume is whole; rejects with the first volume's failure. */
  hydrated: Promise<HydrationSummary>;
  release(): Promise<void>;
}

const held = new Map<string, InstantRecovery>();

/** The instant recovery this process serves for an operation, if any. */
export function heldInstant(opId: string): InstantRecovery | undefined {
  return held.get(opId);
}

/** Stops serving an operation's volumes (cleanup); detaches a mount a killed worker left. */
export async function releaseInstant(opId: string, dir: string): Promise<void> {
  const r = held.get(opId);
  held.delete(opId);
  await r?.release();
  await unmountStale(join(dir, 'instant'));
}

/**
 * Stops serving every operation's volumes (the worker is stopping): their servers lose their
 * disks, so the operations that own them say so when they are resumed or cleaned up.
 */
export async function releaseAllInstant(): Promise<string[]> {
  const ids = [...held.keys()];
  for (const id of ids) {
    const r = held.get(id);
    held.delete(id);
    await r?.release();
  }
  return ids;
}

/**
 * Serves every volume of a point as `<dir>/instant/<volume>.img`, each checked against the
 * point's signed digest before the first read, and starts hydrating them. A local copy an
 * earlier attempt left is reused only block by block where its MAC is the point's.
 */
export async function serveInstant(opId: string, o: InstantOptions): Promise<InstantRecovery> {
  await releaseInstant(opId, o.dir);
  await mkdir(o.dir, { recursive: true, mode: 0o700 });
  const vols: OnDemandVolume[] = [];
  let mounted: MountedVolumes | undefined;
  const started = Date.now();
  try {
    for (const name of Object.keys(o.point.volumes).sort(byOrder(o.point))) {
      vols.push(
        await OnDemandVolume.open({
          client: o.client,
          kek: o.kek,
          app: o.app,
          point: o.point,
          volume: name,
          path: join(o.dir, `${safe(name)}.local`),
          reuse: true,
          ...(o.retryForMs !== undefined ? { retryForMs: o.retryForMs } : {}),
          parallel: o.parallel,
        }),
      );
    }
    mounted = await mountVolumes(join(o.dir, 'instant'), vols, o.log);
  } catch (err) {
    for (const v of vols) await v.close();
    o.client.close();
    throw err;
  }
  const m = mounted;
  const state = () => vols.map((v) => v.state());
  let go!: () => void;
  const start = new Promise<void>((resolve) => {
    go = resolve;
  });
  const hydrated = start
    .then(() => Promise.all(vols.map((v) => v.hydrate())))
    .then((): HydrationSummary => {
      const s = state();
      const at = Math.max(...s.map((x) => x.hydratedAt ?? Date.now()));
      return {
        ms: at - started,
        independentAt: new Date(at).toISOString(),
        bytes: s.reduce((a, x) => a + x.size, 0),
        retries: s.reduce((a, x) => a + x.retries, 0),
      };
    });
  hydrated.then(
    (h) => o.log.info(h, 'instant recovery hydrated: the gateway is no longer needed'),
    (err: unknown) => o.log.error({ err: errorMessage(err) }, 'instant recovery failed'),
  );
  let released = false;
  const r: InstantRecovery = {
    volumes: vols.map((v) => ({ name: v.name, path: m.paths[v.name] as string, size: v.size })),
    state,
    fraction: () => {
      const s = state();
      const total = s.reduce((a, x) => a + x.blocksTotal, 0);
      return total ? s.reduce((a, x) => a + x.blocksLocal, 0) / total : 1;
    },
    startHydrating: go,
    hydrated,
    release: async () => {
      if (released) return;
      released = true;
      await m.unmount();
      for (const v of vols) await v.close();
      o.client.close();
    },
  };
  held.set(opId, r);
  return r;
}

function byOrder(point: PointDetail): (a: string, b: string) => number {
  const order = point.volumeInfo.map((v) => v.name);
  const at = (n: string) => (order.includes(n) ? order.indexOf(n) : order.length);
  return (a, b) => at(a) - at(b);
}

/** Volume names become file names: the gateway's names are checked, this only keeps a slash out. */
function safe(name: string): string {
  return name.replace(/[^\w.-]/g, '_');
}
