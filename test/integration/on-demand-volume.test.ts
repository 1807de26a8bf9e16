import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLog } from '../../core/log.js';
import type { Gateway } from '../../replicator/gateway/gateway-server.js';
import {
  fuseUnavailable,
  type MountedVolumes,
  mountVolumes,
} from '../../replicator/recovery/fuse-mount.js';
import { OnDemandVolume } from '../../replicator/recovery/on-demand-volume.js';
import { restoreVolume } from '../../replicator/recovery/restore-volume.js';
import type { GatewayClient } from '../../replicator/transport/gateway-client.js';
import { dr, kek, type TestHome, testHome, writeImage } from '../helpers/lifeboat-home.js';
import { restoreLatestHere, tamperSegments } from '../helpers/restore.js';
import { missingFeature, skipBecause } from '../helpers/skip.js';
import { waitFor } from '../helpers/wait-for.js';

const run = promisify(execFile);
const SIZE = 8 * 1024 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const noFuse = await fuseUnavailable();

/** Reads a byte range of a file in another process (the FUSE server runs on this one's event loop). */
async function readElsewhere(path: string, skip = 0, count = SIZE): Promise<Buffer> {
  const { stdout } = await run(
    'dd',
    [`if=${path}`, 'bs=4096', `skip=${skip / 4096}`, `count=${count / 4096}`, 'status=none'],
    { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 },
  );
  return stdout;
}

describe.skipIf(missingFeature(noFuse, 'on-demand volume over FUSE'))(
  'a point served on demand over FUSE',
  () => {
    let t: TestHome;
    let gw: Gateway;
    let client: GatewayClient;
    let source: Buffer;
    let mounted: MountedVolumes | undefined;
    let vols: OnDemandVolume[] = [];

    beforeEach(async () => {
      t = await testHome();
      const img = join(t.dir, 'a.img');
      source = await writeImage(img, SIZE, 7);
      const add = ['--home', t.home, 'app', 'add', 'web', '--volume', `a=${img}`];
      expect((await dr([...add, '--quiesce-freeze', 'true', '--quiesce-thaw', 'true'])).code).toBe(
        0,
      );
      gw = await t.startGateway();
      const r = await dr(['--home', t.home, 'agent', '--app', 'web', '--once'], {
        DR_LOG_LEVEL: 'silent',
      });
      expect(r.code).toBe(0);
      client = await t.client();
    });

    afterEach(async () => {
      await mounted?.unmount();
      mounted = undefined;
      for (const v of vols) await v.close();
      vols = [];
      await t?.cleanup();
    });

    async function serve(path = join(t.dir, 'a.local'), reuse = false) {
      const v = await OnDemandVolume.open({
        client,
        kek: await kek(t.home),
        app: 'web',
        point: await client.point('web', 'latest'),
        volume: 'a',
        path,
        reuse,
        retryForMs: 60_000,
      });
      vols.push(v);
      mounted = await mountVolumes(join(t.dir, 'mnt'), [v], silentLog);
      return { v, file: mounted.paths.a as string };
    }

    const fullRestore = () => restoreLatestHere(t, client, 'a', join(t.dir, 'full.img'));

    it('serves a read before anything is local, then hydrates to a byte-identical image', async () => {
      const { v, file } = await serve();
      expect(v.state().blocksLocal).toBeLessThan(v.state().blocksTotal);
      // one 4 KiB read in the middle fetches its chunk (and only that, plus the holes)
      const mid = 3 * 1024 * 1024 + 8192;
      const piece = await readElsewhere(file, mid, 4096);
      expect(sha(piece)).toBe(sha(source.subarray(mid, mid + 4096)));
      expect(v.state().blocksLocal).toBeLessThan(v.state().blocksTotal);
      // the whole file read through FUSE is the source
      expect(sha(await readElsewhere(file))).toBe(sha(source));
      await v.hydrate();
      const s = v.state();
      expect(s.blocksLocal).toBe(s.blocksTotal);
      expect(s.hydratedAt).toBeTypeOf('number');
      const full = await fullRestore();
      expect(sha(await readFile(join(t.dir, 'a.local')))).toBe(sha(full));
      expect(sha(full)).toBe(sha(source));
    });

    it('hydrates a sparse volume (data in scattered extents) to the full restore, its holes left holes', async () => {
      const img = join(t.dir, 'sparse.img');
      const sparse = Buffer.alloc(SIZE);
      for (const at of [1, 3, 6]) randomBytes(1024 * 1024).copy(sparse, at * 1024 * 1024 + 65536);
      const fh = await open(img, 'w');
      await fh.truncate(SIZE);
      for (const at of [1, 3, 6]) {
        const from = at * 1024 * 1024 + 65536;
        await fh.write(sparse, from, 1024 * 1024, from);
      }
      await fh.close();
      const add = ['--home', t.home, 'app', 'add', 'sparse', '--volume', `b=${img}`];
      expect((await dr([...add, '--quiesce-freeze', 'true', '--quiesce-thaw', 'true'])).code).toBe(
        0,
      );
      const shipped = await dr(['--home', t.home, 'agent', '--app', 'sparse', '--once'], {
        DR_LOG_LEVEL: 'silent',
      });
      expect(shipped.code).toBe(0);
      const point = await client.point('sparse', 'latest');
      const local = join(t.dir, 'b.local');
      const v = await OnDemandVolume.open({
        client,
        kek: await kek(t.home),
        app: 'sparse',
        point,
        volume: 'b',
        path: local,
      });
      vols.push(v);
      await v.hydrate();
      const to = join(t.dir, 'b-full.img');
      await restoreVolume({
        client,
        kek: await kek(t.home),
        app: 'sparse',
        point,
        volume: 'b',
        to,
      });
      const full = await readFile(to);
      expect(full.equals(sparse)).toBe(true);
      expect((await readFile(local)).equals(full)).toBe(true);
      // only the 3 MiB of data was written to the local copy
      expect((await stat(local)).blocks * 512).toBeLessThanOrEqual(3 * 1024 * 1024 + 65536);
    });

    it('writes go to the local copy and read back; the point in the gateway is unchanged', async () => {
      const { v, file } = await serve();
      await run('dd', [
        'if=/dev/zero',
        `of=${file}`,
        'bs=4096',
        'count=1',
        'seek=10',
        'conv=notrunc',
        'status=none',
      ]);
      const back = await readElsewhere(file, 40960, 4096);
      expect(back.equals(Buffer.alloc(4096))).toBe(true);
      await v.hydrate();
      const local = await readFile(join(t.dir, 'a.local'));
      expect(local.subarray(40960, 45056).equals(Buffer.alloc(4096))).toBe(true);
      // everything else is the point
      expect(sha(local.subarray(45056))).toBe(sha(source.subarray(45056)));
      expect(sha(await fullRestore())).toBe(sha(source));
    });

    it('a tampered record is EIO to the reader and fails the volume, never wrong data', async () => {
      await gw.close();
      await tamperSegments(t);
      gw = await t.startGateway();
      const { v, file } = await serve();
      const read = readElsewhere(file);
      await expect(read).rejects.toThrow(/Input\/output error/);
      await expect(v.whole()).rejects.toMatchObject({
        code: expect.stringMatching(/block_corrupt|store_corrupt/),
      });
      expect(v.state().failed).toMatch(/block \d+/); // the error names the block
    });

    it('a gateway that goes away is latency to the reader, not an error, and the retries are counted', async () => {
      const { v, file } = await serve();
      const port = Number((await t.config()).gateway.address.split(':').at(-1));
      await gw.close();
      const read = readElsewhere(file);
      await waitFor('a retry against the stopped gateway', () => v.state().retries > 0, 30_000);
      gw = await t.startGateway({ port });
      expect(sha(await read)).toBe(sha(source));
      await v.hydrate();
      expect(v.state().retries).toBeGreaterThan(0);
      expect(v.state().failed).toBeUndefined();
    });

    it('a full DR disk is EIO to the reader and a failed volume that says to free space', async (ctx) => {
      if (process.getuid?.() !== 0)
        return skipBecause(ctx, 'a small tmpfs for the local copy needs root');
      const small = join(t.dir, 'small');
      await mkdir(small);
      await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', small]);
      try {
        const { v, file } = await serve(join(small, 'a.local'));
        await expect(readElsewhere(file)).rejects.toThrow(/Input\/output error/);
        await expect(v.hydrate()).rejects.toThrow(/DR disk is full.*free space/s);
        expect(v.state().failed).toMatch(/DR disk is full/);
      } finally {
        await mounted?.unmount();
        mounted = undefined;
        for (const v of vols) await v.close();
        vols = [];
        await run('umount', ['-l', small]);
      }
    });

    it('a local copy left by a killed worker is reused only where its blocks verify', async () => {
      const path = join(t.dir, 'a.local');
      // an earlier attempt left a copy with the right bytes in most places and garbage in one block
      const left = Buffer.from(source);
      left.fill(0xaa, 5 * 65536, 6 * 65536);
      await writeFile(path, left.subarray(0, SIZE / 2)); // half written when it died
      const { v } = await serve(path, true);
      await v.hydrate();
      expect(sha(await readFile(path))).toBe(sha(source));
    });
  },
);

describe('without FUSE', () => {
  it('says why on-demand volumes cannot be served, or nothing when they can', async () => {
    const why = await fuseUnavailable();
    if (why !== undefined) expect(why).toMatch(/fuse/i);
    else {
      const fh = await open('/dev/fuse', 'r+');
      await fh.close();
    }
  });
});
