/** A volume of repeated blocks through a real gateway: few bytes on the wire, every reader byte-exact. */
import { randomBytes } from 'node:crypto';
import { open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { volumeKeysOf } from '../../replicator/crypto/volume-key.js';
import { fetchVerifiedBlocks } from '../../replicator/recovery/on-demand-fetch.js';
import { readPointVolume } from '../../replicator/recovery/point-reader.js';
import { dr, kek, type TestHome, testHome } from '../helpers/lifeboat-home.js';
import { restorePoint } from '../helpers/restore.js';

const quiet = { DR_LOG_LEVEL: 'silent' };
const BLOCK = 64 * 1024;
const BLOCKS = 64;

describe('repeated blocks travel as references', () => {
  let t: TestHome;
  beforeEach(async () => {
    t = await testHome();
  });
  afterEach(async () => {
    await t.cleanup();
  });

  it('sends each content once, and restore, verify and on-demand reads give every point back byte-exact', async () => {
    const img = join(t.dir, 'a.img');
    // 64 blocks holding four random (incompressible) contents in turn: 4 MiB, 256 KiB distinct.
    const contents = Array.from({ length: 4 }, () => randomBytes(BLOCK));
    await writeFile(
      img,
      Buffer.concat(Array.from({ length: BLOCKS }, (_, i) => contents[i % 4] as Buffer)),
    );
    expect((await dr(['--home', t.home, 'app', 'add', 'web', '--volume', `a=${img}`])).code).toBe(
      0,
    );
    await t.startGateway();
    const agent = async () => {
      const r = await dr(['--home', t.home, 'agent', '--app', 'web', '--once', '--json'], quiet);
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      return JSON.parse(r.out) as {
        point: { id: number };
        blocksSent: number;
        blocksRepeated?: number;
        bytesSent: number;
      };
    };

    const first = await agent();
    expect(first.blocksSent).toBe(BLOCKS);
    expect(first.blocksRepeated).toBe(BLOCKS - 4);
    // Four blocks of data and sixty references, against 4 MiB sent as data.
    expect(first.bytesSent).toBeLessThan(5 * BLOCK);
    const one = await readFile(img);

    // A day's changes: blocks 8-15 now all hold content 0 (repeats of blocks the gateway holds),
    // and blocks 40-43 one new content (sent once, then repeated within the batch).
    const fresh = randomBytes(BLOCK);
    const fh = await open(img, 'r+');
    for (let b = 8; b < 16; b++) await fh.write(contents[0] as Buffer, 0, BLOCK, b * BLOCK);
    for (let b = 40; b < 44; b++) await fh.write(fresh, 0, BLOCK, b * BLOCK);
    await fh.close();
    const second = await agent();
    expect(second.point.id).toBe(2);
    expect(second.blocksSent).toBe(6 + 4); // blocks 8 and 12 already held content 0
    expect(second.blocksRepeated).toBe(6 + 3);
    expect(second.bytesSent).toBeLessThan(2 * BLOCK);
    const two = await readFile(img);

    for (const [point, want] of [
      [1, one],
      [2, two],
    ] as const) {
      const out = join(t.dir, `a-${point}.img`);
      const restored = await restorePoint(t, point, 'a', out);
      expect(restored.code).toBe(0);
      expect((await readFile(out)).equals(want)).toBe(true);
      const verified = await dr(
        ['--home', t.home, 'verify', 'web', '--point', String(point)],
        quiet,
      );
      expect(verified.out).toContain('verify: ok');
      expect(verified.code).toBe(0);
    }

    // The on-demand reader (instant recovery) fetches ranges: repeats resolve there too.
    const client = await t.client();
    try {
      const key = await kek(t.home);
      const point = await client.point('web', 2);
      const info = point.volumeInfo.find((v) => v.name === 'a');
      if (!info) throw new Error('point 2 has no volume a');
      const read = await readPointVolume({ client, kek: key, app: 'web', point, volume: 'a' });
      expect(read.digestOk).toBe(true);
      const source = {
        client,
        app: 'web',
        point,
        volume: 'a',
        keys: volumeKeysOf(key, 'web', info),
        info,
        macs: read.macs,
        blocks: BLOCKS,
      };
      const got = await fetchVerifiedBlocks(source, 6, 46);
      expect(got.size).toBe(40);
      for (const [block, plain] of got)
        expect(plain.equals(two.subarray(block * BLOCK, (block + 1) * BLOCK))).toBe(true);
    } finally {
      client.close();
    }
  });
});
