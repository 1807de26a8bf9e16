/** Resuming: MACs from the agent's own files when they describe this store, else the gateway's; crash intents replayed. */
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DrError } from '../../../../core/errors.js';
import { silentLog } from '../../../../core/log.js';
import { MacState } from '../../../../replicator/agent/mac-state.js';
import {
  bindVolumes,
  replayCrashIntents,
  sameStore,
} from '../../../../replicator/agent/resume-reconciliation.js';
import { VolumeSet } from '../../../../replicator/agent/volume-set.js';
import {
  createWrappedVolumeKey,
  MAC_BYTES,
  volumeKeysOf,
} from '../../../../replicator/crypto/volume-key.js';
import type { SessionResponse } from '../../../../replicator/transport/wire-types.js';
import { appConfig, image, tempDir, testKek } from './agent-fixture.js';

const BLOCK = 4096;
const kek = testKek();
const wrapped = createWrappedVolumeKey(kek, 'web', 'data').toString('base64');

function session(o: Partial<SessionResponse> = {}): SessionResponse {
  return {
    sessionId: 's1',
    storeId: 'store-1',
    volumes: [{ name: 'data', id: 1, size: 4 * BLOCK, blockSize: BLOCK, wrappedKey: wrapped }],
    committedSeq: 0,
    lastSeq: 0,
    pendingSeqs: [],
    latestPoint: null,
    serverTime: Date.now(),
    ...o,
  };
}

describe('resume reconciliation', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let set: VolumeSet;
  let macState: MacState;
  let asked: number;
  const gatewayMac = Buffer.alloc(MAC_BYTES, 7);
  const client = {
    macs: async () => {
      asked++;
      return new Map([[2, gatewayMac]]);
    },
  };
  const opts = (s: SessionResponse) => ({
    app: 'web',
    blockSize: BLOCK,
    kek,
    macState,
    session: s,
    client,
    log: silentLog,
  });

  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    asked = 0;
    const path = await image(join(dir, 'data.img'), 4, BLOCK);
    set = await VolumeSet.open({
      app: 'web',
      appConfig: appConfig({ data: path }),
      tracker: 'scan',
      trace: {},
      log: silentLog,
      lockDir: join(dir, 'locks'),
    });
    macState = await MacState.open(join(dir, 'state'));
  });
  afterEach(async () => {
    await macState.close();
    await set.close();
    await cleanup();
  });

  it('starts a volume from the gateway’s copy: blocks it holds, the rest as zeros', async () => {
    const s = session();
    const [v] = await bindVolumes(set.volumes, opts(s));
    expect(v).toMatchObject({ name: 'data', id: 1, size: 4 * BLOCK, blockSize: BLOCK });
    const keys = volumeKeysOf(
      kek,
      'web',
      s.volumes[0] as NonNullable<SessionResponse['volumes'][0]>,
    );
    const macs = macState.macs.get('data') as Buffer;
    expect(macs.subarray(2 * MAC_BYTES, 3 * MAC_BYTES).equals(gatewayMac)).toBe(true);
    expect(macs.subarray(0, MAC_BYTES).equals(keys.zeroMac)).toBe(true);
    expect(asked).toBe(1);
  });

  it('trusts its own MAC files on the next start into the same store', async () => {
    const s = session();
    const volumes = await bindVolumes(set.volumes, opts(s));
    await replayCrashIntents(volumes, macState, s, sameStore(macState, s));
    await macState.close();
    macState = await MacState.open(join(dir, 'state'));
    expect(sameStore(macState, s)).toBe(true);
    await bindVolumes(set.volumes, opts(s));
    expect(asked).toBe(1);
  });

  it('asks the gateway again when the store was replaced', async () => {
    const s = session();
    const volumes = await bindVolumes(set.volumes, opts(s));
    await replayCrashIntents(volumes, macState, s, true);
    await macState.close();
    macState = await MacState.open(join(dir, 'state'));
    const other = session({ storeId: 'store-2' });
    expect(sameStore(macState, other)).toBe(false);
    await bindVolumes(set.volumes, opts(other));
    expect(asked).toBe(2);
  });

  it('counts a crashed batch as sent only when the gateway holds it', async () => {
    const s = session({ pendingSeqs: [5] });
    const volumes = await bindVolumes(set.volumes, opts(s));
    const held = Buffer.alloc(MAC_BYTES, 0xaa).toString('hex');
    const lost = Buffer.alloc(MAC_BYTES, 0xbb).toString('hex');
    await macState.writeIntent({ seq: 5, blocks: { data: [[0, held]] } });
    await macState.writeIntent({ seq: 6, blocks: { data: [[1, lost]] } });
    await replayCrashIntents(volumes, macState, s, true);
    const macs = macState.macs.get('data') as Buffer;
    expect(macs.subarray(0, MAC_BYTES).toString('hex')).toBe(held);
    expect(macs.subarray(MAC_BYTES, 2 * MAC_BYTES).toString('hex')).not.toBe(lost);
    expect(await macState.pendingIntents()).toEqual([]);
    expect(macState.state).toEqual({
      storeId: 'store-1',
      volumes: { data: { size: 4 * BLOCK, blockSize: BLOCK } },
    });
  });

  it('replays no intent into a store other than the one it was written for', async () => {
    const s = session({ pendingSeqs: [5] });
    const volumes = await bindVolumes(set.volumes, opts(s));
    const before = Buffer.from(macState.macs.get('data') as Buffer);
    await macState.writeIntent({ seq: 5, blocks: { data: [[0, 'aa'.repeat(MAC_BYTES)]] } });
    await replayCrashIntents(volumes, macState, s, false);
    expect((macState.macs.get('data') as Buffer).equals(before)).toBe(true);
  });

  it('refuses a block size changed since the volume was replicated', async () => {
    const s = session({
      volumes: [
        { name: 'data', id: 1, size: 4 * BLOCK, blockSize: 2 * BLOCK, wrappedKey: wrapped },
      ],
    });
    const err = await bindVolumes(set.volumes, opts(s)).then(
      () => undefined,
      (e: unknown) => e as DrError,
    );
    expect(err).toBeInstanceOf(DrError);
    expect(err?.code).toBe('config_invalid');
    expect(err?.message).toBe(
      'volume data is replicated with block size 8192, but dr.yaml says 4096. To resolve, set blockSize back to 8192',
    );
  });

  it('refuses a volume the gateway did not register', async () => {
    const err = await bindVolumes(set.volumes, opts(session({ volumes: [] }))).then(
      () => undefined,
      (e: unknown) => e as DrError,
    );
    expect(err?.code).toBe('gateway_refused');
    expect(err?.message).toMatch(/did not register volume data/);
  });
});
