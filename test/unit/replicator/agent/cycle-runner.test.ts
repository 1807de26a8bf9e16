/** One cycle over real volumes and MAC state: what it ships, the point it signs, and when it commits none. */
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DrError } from '../../../../core/errors.js';
import { silentLog } from '../../../../core/log.js';
import { AgentStatus } from '../../../../replicator/agent/agent-status.js';
import { BatchSequence } from '../../../../replicator/agent/batch-sequence.js';
import { BatchShipper } from '../../../../replicator/agent/batch-shipper.js';
import { CycleRunner } from '../../../../replicator/agent/cycle-runner.js';
import { GatewaySession } from '../../../../replicator/agent/gateway-session.js';
import { MacState } from '../../../../replicator/agent/mac-state.js';
import { PointChain } from '../../../../replicator/agent/point-chain.js';
import {
  bindVolumes,
  replayCrashIntents,
} from '../../../../replicator/agent/resume-reconciliation.js';
import type { Shipper, ShipVolume } from '../../../../replicator/agent/shipper.js';
import { VolumeSet } from '../../../../replicator/agent/volume-set.js';
import { type PointRecord, recordHash } from '../../../../replicator/crypto/point-record.js';
import { appConfig, FakeGateway, image, tempDir, testKek } from './agent-fixture.js';

const BLOCK = 4096;

describe('CycleRunner', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let set: VolumeSet;
  let macState: MacState;
  let gw: FakeGateway;
  let session: GatewaySession;
  let status: AgentStatus;
  let chain: PointChain;
  let seq: BatchSequence;
  let path: string;
  const kek = testKek();

  /** The agent's parts after a start, with `shipper` making each cycle's shipper. */
  async function runner(shipper?: (signal?: AbortSignal) => Shipper): Promise<CycleRunner> {
    const opened = await session.open(set.volumes);
    seq = new BatchSequence(opened.lastSeq, opened.committedSeq);
    const resume = {
      app: 'web',
      blockSize: BLOCK,
      kek,
      macState,
      session: opened,
      client: gw,
      log: silentLog,
    };
    const volumes = await bindVolumes(set.volumes, resume);
    await chain.adopt(opened);
    await replayCrashIntents(volumes, macState, opened, false);
    return new CycleRunner({
      app: 'web',
      volumes,
      macState,
      quiescer: set.quiescer,
      session,
      chain,
      seq,
      status,
      client: gw,
      shipper:
        shipper ??
        ((signal) =>
          new BatchShipper({
            app: 'web',
            macState,
            takeSeq: () => seq.take(),
            returnSeq: (n) => seq.giveBack(n),
            send: async (n, body) => {
              await session.call(`batch ${n}`, (id) => gw.sendBatch('web', id, body), signal);
            },
            batchBytes: 2 * BLOCK,
            eagerBytes: 2 * BLOCK, // batches only when full: the figures below count them
            inFlight: 2,
          })),
      log: silentLog,
      now: Date.now,
    });
  }

  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    path = await image(join(dir, 'data.img'), 6, BLOCK);
    set = await VolumeSet.open({
      app: 'web',
      appConfig: appConfig({ data: path }),
      tracker: 'scan',
      trace: {},
      log: silentLog,
      lockDir: join(dir, 'locks'),
    });
    macState = await MacState.open(join(dir, 'state'));
    gw = new FakeGateway();
    const lock = { previousSession: undefined, deadPids: [], recordSession: async () => {} };
    session = new GatewaySession({
      app: 'web',
      client: gw,
      kek,
      blockSize: BLOCK,
      lock,
      log: silentLog,
      now: Date.now,
    });
    status = new AgentStatus();
    chain = new PointChain('web', kek, join(dir, 'state'), silentLog);
  });
  afterEach(async () => {
    await session.close();
    await macState.close();
    await set.close();
    await cleanup();
  });

  it('ships every block the DR site lacks and commits one signed point covering its batches', async () => {
    const r = await (await runner()).cycle();
    expect(r.unchanged).toBeUndefined();
    expect(r.blocksSent).toBe(6);
    expect(r.scannedBytes).toBe(6 * BLOCK);
    expect(gw.batches).toEqual([1, 2, 3]);
    expect(r.point).toMatchObject({ id: 1, seqFrom: 1, seqTo: 3, label: 'fuzzy' });
    expect(gw.commits[0]?.record.prev).toBeNull();
    expect(status.phase).toBe('continuous');
    expect(status.newestPoint?.id).toBe(1);
    expect(chain.ledger?.id).toBe(1);
  });

  it('commits no point when nothing changed, after asking whether the app is still protected', async () => {
    const run = await runner();
    await run.cycle();
    const asks = gw.protectionAsks;
    const r = await run.cycle();
    expect(r).toMatchObject({ unchanged: true, blocksSent: 0, point: { id: 1 } });
    expect(gw.commits).toHaveLength(1);
    expect(gw.protectionAsks).toBe(asks + 1);
    expect(status.unchangedAt).toBeTypeOf('number');
  });

  it('refuses an unchanged cycle of a paused app, and keeps why for status', async () => {
    const run = await runner();
    await run.cycle();
    gw.protectionState = { state: 'paused', by: 'alice', since: 'now' };
    const err = await run.cycle().then(
      () => undefined,
      (e: unknown) => e as DrError,
    );
    expect(err).toBeInstanceOf(DrError);
    expect(err?.code).toBe('app_paused');
    expect(status.lastError).toMatch(/paused \(by alice/);
  });

  it('sends only the changed block next time, and the point names the one before', async () => {
    const run = await runner();
    const first = await run.cycle();
    const fh = await open(path, 'r+');
    await fh.write(Buffer.alloc(BLOCK, 0xee), 0, BLOCK, 4 * BLOCK);
    await fh.close();
    const r = await run.cycle();
    expect(r.blocksSent).toBe(1);
    expect(r.point).toMatchObject({ id: 2, seqFrom: first.point.seqTo + 1 });
    expect(gw.commits[1]?.record.prev).toBe(recordHash(gw.commits[0]?.record as PointRecord));
  });

  it('ships through the shipper it is given', async () => {
    const added: Array<[string, number]> = [];
    let finished = 0;
    const recording: Shipper = {
      blocks: 0,
      plainBytes: 0,
      bytesSent: 0,
      lastAcked: 0,
      async add(volume: ShipVolume, block: number) {
        added.push([volume.name, block]);
        (this as { blocks: number }).blocks++;
      },
      async flush() {},
      async finish() {
        finished++;
      },
      async settle() {},
      close() {},
    };
    const r = await (await runner(() => recording)).cycle();
    expect(added).toEqual([0, 1, 2, 3, 4, 5].map((b) => ['data', b]));
    expect(finished).toBe(1);
    expect(r.blocksSent).toBe(6);
    expect(gw.batches).toEqual([]);
  });

  it('leaves the trackers unsure and says why when the gateway refuses the commit', async () => {
    const run = await runner();
    gw.fail(
      'commit',
      new DrError('the commit names batches never received', { code: 'bad_request' }),
    );
    await expect(run.cycle()).rejects.toThrow('batches never received');
    expect(status.lastError).toBe('the commit names batches never received');
    expect(gw.commits).toHaveLength(0);
    // The next cycle scans again and commits what was acknowledged.
    const r = await run.cycle();
    expect(r.point.id).toBe(1);
  });
});
