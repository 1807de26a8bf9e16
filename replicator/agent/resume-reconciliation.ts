/** Resuming after a stop or a crash: each volume's MACs as the DR site holds them, and the batches a crash left unsettled. */
import { DrError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { KeyEncryptionKey } from '../crypto/key-encryption-key.js';
import { MAC_BYTES, volumeKeysOf } from '../crypto/volume-key.js';
import type { GatewayClient } from '../transport/gateway-client.js';
import type { SessionResponse } from '../transport/wire-types.js';
import { absentMacs } from './absent-macs.js';
import type { OpenVolume } from './cut.js';
import type { MacState } from './mac-state.js';
import { withRetry } from './retry.js';
import type { HeldVolume } from './volume-set.js';

export interface ResumeOptions {
  app: string;
  blockSize: number;
  kek: KeyEncryptionKey;
  macState: MacState;
  session: SessionResponse;
  /** The gateway's MACs of a volume, for one whose local MACs cannot be trusted. */
  client: Pick<GatewayClient, 'macs'>;
  log: Logger;
  signal?: AbortSignal | undefined;
}

/** Whether the agent's kept MAC state describes the store this session writes into. */
export function sameStore(macState: MacState, session: SessionResponse): boolean {
  return macState.state?.storeId === session.storeId;
}

/**
 * Binds each held volume to the gateway's registration (its id and keys; a wrong KEK fails here,
 * named as such) and loads the MAC of every block as the DR site holds it: the agent's own MAC
 * file when it describes this store and this volume size, else the gateway's copy (blocks it
 * holds nothing of read as zeros). A changed block size is refused: it is fixed once replicated.
 */
export async function bindVolumes(
  held: readonly HeldVolume[],
  { app, blockSize, kek, macState, session, client, log, signal }: ResumeOptions,
): Promise<OpenVolume[]> {
  const state = macState.state;
  const trustStore = sameStore(macState, session);
  const out: OpenVolume[] = [];
  for (const h of held) {
    const info = session.volumes.find((v) => v.name === h.name);
    if (!info)
      throw new DrError(`gateway did not register volume ${h.name}`, { code: 'gateway_refused' });
    if (info.blockSize !== blockSize) {
      throw new DrError(
        `volume ${h.name} is replicated with block size ${info.blockSize}, but dr.yaml says ${blockSize}`,
        {
          code: 'config_invalid',
          subject: `apps.${app}.blockSize`,
          remedy: `set blockSize back to ${info.blockSize}`,
        },
      );
    }
    const keys = volumeKeysOf(kek, app, info);
    const prev = state?.volumes[h.name];
    if (prev && prev.size !== h.size) {
      log.warn(
        { volume: h.name, from: prev.size, to: h.size },
        'volume size changed since the last run; protecting the new size',
      );
    }
    const trustLocal = trustStore && prev?.size === h.size && prev.blockSize === info.blockSize;
    const blocks = Math.ceil(h.size / info.blockSize);
    await macState.load(
      h.name,
      blocks,
      async () => {
        const macs = absentMacs(keys, h.size);
        const gateway = await withRetry(() => client.macs(app, 'head', h.name), {
          what: 'fetch MACs',
          log,
          signal,
        });
        for (const [block, mac] of gateway) if (block < blocks) mac.copy(macs, block * MAC_BYTES);
        log.info({ volume: h.name, blocksHeld: gateway.size }, 'starting from the gateway’s copy');
        return macs;
      },
      trustLocal,
    );
    out.push({
      name: h.name,
      id: info.id,
      file: h.file,
      size: h.size,
      blockSize: info.blockSize,
      keys,
      tracking: h.tracking,
      lock: h.lock,
    });
  }
  return out;
}

/**
 * Batches sent before a crash: those the gateway holds (pending in this session, same store)
 * count as sent, the rest are found again by the next scan. Then the MAC state is made durable
 * and remembers which store and volume sizes it describes.
 */
export async function replayCrashIntents(
  volumes: readonly OpenVolume[],
  macState: MacState,
  session: SessionResponse,
  trustStore: boolean,
): Promise<void> {
  const pending = new Set(session.pendingSeqs);
  for (const intent of await macState.pendingIntents())
    if (trustStore && pending.has(intent.seq)) macState.apply(intent);
  await macState.flush();
  await macState.saveState({
    storeId: session.storeId,
    volumes: Object.fromEntries(
      volumes.map((v) => [v.name, { size: v.size, blockSize: v.blockSize }]),
    ),
  });
}
