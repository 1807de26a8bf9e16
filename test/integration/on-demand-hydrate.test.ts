// Hydration through the restore's lanes (worker threads or this thread): byte-identical to a full
// restore, the server's reads and writes kept, tampering and a lost gateway handled.
import { createHash } from 'node:crypto';
import { open as openFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { volumeKeysOf } from '../../replicator/crypto/volume-key.js';
import type { Gateway } from '../../replicator/gateway/gateway-server.js';
import { runLanes } from '../../replicator/recovery/lane-pool.js';
import { OnDemandVolume } from '../../replicator/recovery/on-demand-volume.js';
import type { LaneReport } from '../../replicator/recovery/range-lane.js';
import { GatewayClient } from '../../replicator/transport/gateway-client.js';
import { dr, kek, type TestHome, testHome, writeImage } from '../helpers/lifeboat-home.js';
import { restoreLatestHere, tamperSegments } from '../helpers/restore.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { waitFor } from '../helpers/wait-for.js';

/** 48 MiB of 64 KiB blocks; the server's reads and write split the hydrator's work into several ranges. */
const SIZE = 48 * 1024 * 1024;
const BLOCK = 65536;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('hydration through the restore lanes', () => {
  let t: TestHome;
  let gw: Gateway;
  let client: GatewayClient;
  let source: Buffer;
  let vols: OnDemandVolume[] = [];
  let proxy: TcpProxy | undefined;

  beforeEach(async () => {
    t = await testHome();
    const img = join(t.dir, 'a.img');
    source = await writeImage(img, SIZE, 11);
    const add = ['--home', t.home, 'app', 'add', 'web', '--volume', `a=${img}`];
    expect((await dr([...add, '--quiesce-freeze', 'true', '--quiesce-thaw', 'true'])).code).toBe(0);
    gw = await t.startGateway();
    const r = await dr(['--home', t.home, 'agent', '--app', 'web', '--once'], {
      DR_LOG_LEVEL: 'silent',
    });
    expect(r.code).toBe(0);
    client = await t.client();
  }, 180_000);

  afterEach(async () => {
    for (const v of vols) await v.close();
    vols = [];
    await proxy?.close();
    proxy = undefined;
    await t?.cleanup();
  });

  async function open(workers: number, via = client) {
    const v = await OnDemandVolume.open({
      client: via,
      kek: await kek(t.home),
      app: 'web',
      point: await client.point('web', 'latest'),
      volume: 'a',
      path: join(t.dir, 'a.local'),
      retryForMs: 120_000,
      parallel: { ranges: 3, workers },
    });
    vols.push(v);
    return v;
  }

  const fullRestore = () => restoreLatestHere(t, client, 'a', join(t.dir, 'full.img'));

  for (const workers of [1, 0]) {
    it(`with ${workers} worker thread(s): reads served meanwhile, a write kept, the rest byte-identical to a full restore`, async () => {
      const v = await open(workers);
      // The server writes one block before hydration and reads two others while it runs.
      const mine = Buffer.alloc(BLOCK, 0x5a);
      await v.write(mine, BLOCK, 300 * BLOCK);
      const hydrated = v.hydrate();
      const piece = Buffer.alloc(8192);
      await v.read(piece, piece.length, 600 * BLOCK + 4096);
      expect(piece.equals(source.subarray(600 * BLOCK + 4096, 600 * BLOCK + 4096 + 8192))).toBe(
        true,
      );
      await v.read(piece, piece.length, 10 * BLOCK);
      expect(piece.equals(source.subarray(10 * BLOCK, 10 * BLOCK + 8192))).toBe(true);
      await hydrated;
      const s = v.state();
      expect(s.blocksLocal).toBe(s.blocksTotal);
      expect(s.failed).toBeUndefined();
      const local = await readFile(join(t.dir, 'a.local'));
      const full = await fullRestore();
      expect(sha(full)).toBe(sha(source));
      // The server's write won over the point's block; every other byte is the full restore's.
      expect(local.subarray(300 * BLOCK, 301 * BLOCK).equals(mine)).toBe(true);
      mine.copy(full, 300 * BLOCK);
      expect(sha(local)).toBe(sha(full));
    }, 180_000);
  }

  it('a tampered record found while hydrating fails the volume naming the block; no wrong byte is written', async () => {
    await gw.close();
    await tamperSegments(t, true);
    gw = await t.startGateway();
    const v = await open(1);
    await expect(v.hydrate()).rejects.toMatchObject({ code: 'block_corrupt' });
    expect(v.state().failed).toMatch(/block \d+/);
    await expect(v.whole()).rejects.toMatchObject({ code: 'block_corrupt' });
    // Readers get the failure, never bytes.
    await expect(v.read(Buffer.alloc(4096), 4096, 0)).rejects.toMatchObject({
      code: 'block_corrupt',
    });
    const local = await readFile(join(t.dir, 'a.local'));
    for (let o = 0; o < SIZE; o += BLOCK) {
      const got = local.subarray(o, o + BLOCK);
      if (got.some((x) => x !== 0)) expect(got.equals(source.subarray(o, o + BLOCK))).toBe(true);
    }
  }, 180_000);

  it('a gateway gone at the start and connections cut midway: retried with backoff, then byte-identical', async () => {
    const address = (await t.config()).gateway.address;
    const port = Number(address.split(':').at(-1));
    // Every record stream is cut after 2 MiB: lanes ask again from the next block.
    proxy = await startTcpProxy(address, { cutAfter: () => 2 * 1024 * 1024 });
    const via = new GatewayClient({ ...client.options, address: `127.0.0.1:${proxy.port}` });
    try {
      const v = await open(1, via);
      await gw.close();
      const hydrated = v.hydrate();
      await waitFor('a retry against the stopped gateway', () => v.state().retries > 0, 120_000);
      // Records over TLS, through the proxy that cuts them (a sealed stream would go around it).
      gw = await t.startGateway({ port, recordStreams: false });
      await hydrated;
      expect(v.state().failed).toBeUndefined();
      expect(proxy.cuts).toBeGreaterThan(0);
      expect(sha(await readFile(join(t.dir, 'a.local')))).toBe(sha(await fullRestore()));
    } finally {
      via.close();
    }
  }, 180_000);

  it('a lane given the point MACs refuses a record whose MAC is not the one expected, and does not write it', async () => {
    const point = await client.point('web', 'latest');
    const info = point.volumeInfo.find((i) => i.name === 'a');
    if (!info) throw new Error('no volume a in the point');
    const keys = volumeKeysOf(await kek(t.home), 'web', info);
    // The MACs the point vouches for, one block's changed (as if the gateway sent another point's record).
    const all = await client.macs('web', point.id, 'a');
    const blocks = SIZE / BLOCK;
    const want = Buffer.alloc(blocks * 16).fill(keys.zeroMac);
    for (const [b, mac] of all) mac.copy(want, b * 16);
    const data = (b: number) => source.subarray(b * BLOCK, (b + 1) * BLOCK);
    const withData = [...all.keys()].filter((b) => data(b).some((x) => x !== 0));
    const [target, other] = withData.slice(3, 5) as [number, number];
    want[target * 16] = (want[target * 16] as number) ^ 1;
    const out = join(t.dir, 'lane.img');
    await writeFile(out, Buffer.alloc(0));
    const fh = await openFile(out, 'r+');
    const problems: LaneReport['problems'] = [];
    try {
      await fh.truncate(SIZE);
      const ranges = [{ from: 0, to: blocks }];
      await runLanes({
        client,
        keys,
        job: {
          app: 'web',
          volume: 'a',
          volumeId: info.id,
          point: point.id,
          blocks,
          fd: fh.fd,
          macs: want,
          settleRanges: true,
        },
        parallel: { ranges: 1, workers: 1 },
        collect: true,
        nextRange: () => ranges.shift(),
        report: (r) => problems.push(...r.problems),
        signal: new AbortController().signal,
      });
    } finally {
      await fh.close();
    }
    expect(problems.map((p) => p.block)).toEqual([target]);
    expect(problems[0]?.reason).toMatch(/is not the one point \d+ committed/);
    const img = await readFile(out);
    expect(img.subarray(target * BLOCK, (target + 1) * BLOCK).equals(Buffer.alloc(BLOCK))).toBe(
      true,
    );
    // the other blocks landed
    expect(img.subarray(other * BLOCK, (other + 1) * BLOCK).equals(data(other))).toBe(true);
  }, 180_000);
});
