// Restores fetch ranges at once, on worker threads or not: byte-exact whatever order ranges arrive
// in, a range cut midway is fetched again, and every failure is an error, never a hang or a partial file.
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { homePaths } from '../../core/home.js';
import { createLogger } from '../../core/log.js';
import { preflightBoot } from '../../replicator/jobs/preflight-boot.js';
import type { Provider } from '../../replicator/providers/provider.js';
import { readPointVolume } from '../../replicator/recovery/point-reader.js';
import type { ReadParallelism } from '../../replicator/recovery/read-parallelism.js';
import { restoreVolume } from '../../replicator/recovery/restore-volume.js';
import { GatewayClient } from '../../replicator/transport/gateway-client.js';
import type { PointDetail } from '../../replicator/transport/wire-types.js';
import {
  dr,
  kek,
  type TestHome,
  testHome,
  updateConfig,
  writeImage,
} from '../helpers/lifeboat-home.js';
import { restoreLatest } from '../helpers/restore.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';

const quiet = { DR_LOG_LEVEL: 'silent' };
const SIZE = 32 * 1024 * 1024 + 12_345; // 513 blocks of 64 KiB, the last one short

describe('parallel restores', { timeout: 180_000 }, () => {
  let t: TestHome;
  let source: Buffer;
  let point: PointDetail;
  const proxies: TcpProxy[] = [];
  const clients: GatewayClient[] = [];

  beforeEach(async () => {
    t = await testHome();
    const path = join(t.dir, 'data.src');
    source = await writeImage(path, SIZE, 3);
    expect(
      (await dr(['--home', t.home, 'app', 'add', 'web', '--volume', `data=${path}`])).code,
    ).toBe(0);
    // The proxies below stand on the gateway's TLS port: records come that way only (a sealed
    // stream would go around them; test/integration/sealed-stream.test.ts covers that path).
    await updateConfig(t.home, (doc) => doc.setIn(['gateway', 'recordStreams'], false));
    await t.startGateway();
    const once = await dr(['--home', t.home, 'agent', '--app', 'web', '--once', '--json'], quiet);
    expect(once.code).toBe(0);
    point = await (await t.client()).point('web', JSON.parse(once.out).point.id as number);
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    for (const p of proxies.splice(0)) await p.close();
    await t.cleanup();
  });

  /** A client of the gateway through a proxy that follows `plan`. */
  async function through(plan: Parameters<typeof startTcpProxy>[1]) {
    const direct = await t.client();
    const proxy = await startTcpProxy(direct.address, plan);
    proxies.push(proxy);
    const client = new GatewayClient({
      ...direct.options,
      address: `127.0.0.1:${proxy.port}`,
      timeoutMs: 120_000,
    });
    clients.push(client);
    return { client, proxy };
  }

  async function restore(client: GatewayClient, parallel: ReadParallelism, name: string) {
    const to = join(t.dir, name);
    const r = await restoreVolume({
      client,
      kek: await kek(t.home),
      app: 'web',
      point,
      volume: 'data',
      to,
      parallel,
    });
    return { r, to };
  }

  const partials = async () => (await readdir(t.dir)).filter((n) => n.includes('lifeboat-partial'));

  for (const workers of [0, 2]) {
    it(`is byte-exact when a later range arrives before the first (${workers} worker threads)`, async () => {
      // The first connection stalls after 100 KiB until the others carried a third of the volume.
      const { client, proxy } = await through({
        hold: (i) =>
          i === 0
            ? {
                after: 100 * 1024,
                release: () => proxy.downstream.slice(1).reduce((n, b) => n + b, 0) > SIZE / 3,
              }
            : undefined,
      });
      const { r, to } = await restore(client, { ranges: 4, workers }, `out-${workers}.img`);
      expect(proxy.heldWhileOthersRan).toBe(true);
      expect((await readFile(to)).equals(source)).toBe(true);
      expect(r.size).toBe(SIZE);
      // Whole pages of data went O_DIRECT (the test directory's file system takes it); the
      // volume's 57-byte tail past the last page went through the page cache.
      expect(r.bytesDirect).toBe(r.bytesWritten - (SIZE % 4096));
      expect(await partials()).toEqual([]);
    });
  }

  it('fetches a range cut midway again from where it stopped; the image is byte-exact', async () => {
    const { client, proxy } = await through({
      cutAfter: (i) => (i < 2 ? 3 * 1024 * 1024 : undefined),
    });
    const { to } = await restore(client, { ranges: 2, workers: 0 }, 'cut.img');
    expect(proxy.cuts).toBe(2);
    expect((await readFile(to)).equals(source)).toBe(true);
  });

  it('fails clearly and leaves no partial file when tries of a range bring nothing', async () => {
    // Each connection is cut inside the first record it carries (after the TLS handshake).
    const { client, proxy } = await through({ cutAfter: () => 40 * 1024 });
    const to = join(t.dir, 'never.img');
    await expect(restore(client, { ranges: 2, workers: 1 }, 'never.img')).rejects.toMatchObject({
      code: 'gateway_unreachable',
      message: /record stream for web\/data/,
    });
    expect(proxy.cuts).toBeGreaterThanOrEqual(4);
    await expect(stat(to)).rejects.toThrow();
    expect(await partials()).toEqual([]);
  });

  it('a worker thread that dies is an error naming it, not a hang', async () => {
    const client = await t.client();
    await expect(
      readPointVolume({
        client,
        kek: await kek(t.home),
        app: 'web',
        point,
        volume: 'data',
        parallel: { ranges: 2, workers: 1 },
        // A heap too small for any thread: it dies as it starts.
        workerLimits: { maxOldGenerationSizeMb: 1, maxYoungGenerationSizeMb: 1 },
      }),
    ).rejects.toMatchObject({ code: 'child_failed', message: /restore worker thread/ });
  });

  it('a tampered record fails the restore naming the block, with workers and ranges', async () => {
    const config = await t.config();
    const segDir = join(config.storeDir, 'apps', 'web', 'segments');
    const seg = join(segDir, (await readdir(segDir)).sort()[0] as string);
    const bytes = await readFile(seg);
    const at = Math.floor(bytes.length / 2);
    bytes[at] = (bytes[at] as number) ^ 0x55;
    await writeFile(seg, bytes);
    const to = join(t.dir, 'tampered.img');
    const r = await restoreLatest(t, 'data', to, 'web', ['--parallel', '4', '--workers', '1']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/web\/data block \d+: .*(authenticate|MAC|malformed)/);
    await expect(stat(to)).rejects.toThrow();
    expect(await partials()).toEqual([]);
  });

  it('dr restore --parallel / --workers and dr.yaml refuse bad counts, naming them', async () => {
    const to = join(t.dir, 'bad.img');
    for (const [flag, value, range] of [
      ['--parallel', '0', '1 to 8'],
      ['--parallel', '9', '1 to 8'],
      ['--parallel', 'two', '1 to 8'],
      ['--parallel', '1.5', '1 to 8'],
      ['--workers', '-1', '0 to 8'],
      ['--workers', '99', '0 to 8'],
    ] as const) {
      const r = await restoreLatest(t, 'data', to, 'web', [flag, value]);
      expect(r.code, `${flag} ${value}`).toBe(2);
      expect(r.err).toContain(`${flag} ${value} is not a whole number from ${range}`);
      expect(r.err).toContain('To resolve');
    }
    await expect(stat(to)).rejects.toThrow();
    // dr.yaml is checked when it is written and when it is read: a bad count is refused both ways.
    await expect(
      updateConfig(t.home, (doc) => doc.setIn(['recovery', 'restoreParallel'], 0)),
    ).rejects.toThrow(/recovery\.restoreParallel/);
    const yaml = homePaths(t.home).config;
    const good = await readFile(yaml, 'utf8');
    await writeFile(yaml, `${good}\nrecovery:\n  restoreWorkers: 9\n`);
    const r = await restoreLatest(t, 'data', to);
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/recovery\.restoreWorkers/);
    await writeFile(yaml, good);
    // Good values restore as usual.
    await updateConfig(t.home, (doc) => {
      doc.setIn(['recovery', 'restoreParallel'], 3);
      doc.setIn(['recovery', 'restoreWorkers'], 1);
    });
    expect((await restoreLatest(t, 'data', to)).code).toBe(0);
    expect((await readFile(to)).equals(source)).toBe(true);
  });

  /** The bytes each record connection of a read carried: one range or several. */
  const carried = (proxy: TcpProxy) => proxy.downstream.filter((n) => n > 1024 * 1024);

  it('dr verify reads with recovery.restoreParallel / restoreWorkers from dr.yaml', async () => {
    const direct = await t.client();
    const proxy = await startTcpProxy(direct.address);
    proxies.push(proxy);
    const verify = async (ranges: number) => {
      proxy.downstream.length = 0;
      await updateConfig(t.home, (doc) => {
        doc.setIn(['gateway', 'address'], `127.0.0.1:${proxy.port}`);
        doc.setIn(['recovery', 'restoreParallel'], ranges);
        doc.setIn(['recovery', 'restoreWorkers'], 0);
      });
      const r = await dr(['--home', t.home, 'verify', 'web', '--point', String(point.id)], quiet);
      expect(r.code, r.err).toBe(0);
      return carried(proxy);
    };
    // One range: one connection carries the whole volume; four: eight ranges of about 4 MiB.
    const one = await verify(1);
    expect(one).toHaveLength(1);
    expect(one[0]).toBeGreaterThan(SIZE / 2); // about 4/5 of the blocks hold data
    const four = await verify(4);
    expect(four.length).toBe(8);
    expect(Math.max(...four)).toBeLessThan(SIZE / 4);
  });

  it("a failover's preflight reads with the parallelism it is given", async () => {
    const { client, proxy } = await through({});
    const images: Buffer[] = [];
    const provider = {
      preflight: async (req: { volumes: Array<{ path: string }> }) => {
        images.push(await readFile(req.volumes[0]?.path as string));
        return [];
      },
    } as unknown as Provider;
    const k = await kek(t.home);
    for (const ranges of [1, 4]) {
      proxy.downstream.length = 0;
      images.length = 0;
      await preflightBoot({
        provider,
        client,
        kek: k,
        opId: `op-${ranges}`,
        app: 'web',
        point,
        dir: join(t.dir, `op-${ranges}`),
        parallel: { ranges, workers: 0 },
        signal: new AbortController().signal,
        log: createLogger({ level: 'silent' }),
      });
      expect(images.length === 1 && images[0]?.equals(source), `${ranges} ranges`).toBe(true);
      expect(carried(proxy)).toHaveLength(ranges === 1 ? 1 : 8);
    }
  });
});
