import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { materialiseCached } from '../../replicator/recovery/image-cache.js';
import type { GatewayClient } from '../../replicator/transport/gateway-client.js';
import { dr, kek, type TestHome, testHome, writeImage } from '../helpers/lifeboat-home.js';

const BLOCK = 64 * 1024;
const SIZE = 2 * 1024 * 1024;
const digest = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('materialising through the image cache', () => {
  let t: TestHome;
  let client: GatewayClient;
  let source: string;
  let cacheDir: string;

  beforeEach(async () => {
    t = await testHome();
    source = join(t.dir, 'a.img');
    cacheDir = join(t.home, 'cache', 'images', 'web'); // where `dr warm` keeps it too
    await writeImage(source, SIZE, 3);
    const add = ['--home', t.home, 'app', 'add', 'web', '--volume', `a=${source}`];
    expect((await dr([...add, '--quiesce-freeze', 'true', '--quiesce-thaw', 'true'])).code).toBe(0);
    await t.startGateway();
    await ship();
    client = await t.client();
  });

  afterEach(async () => {
    await t?.cleanup();
  });

  async function ship() {
    const r = await dr(['--home', t.home, 'agent', '--app', 'web', '--once'], {
      DR_LOG_LEVEL: 'silent',
    });
    expect(r.code).toBe(0);
  }

  async function overwrite(blocks: number[], data: (b: number) => Buffer) {
    const fh = await open(source, 'r+');
    try {
      for (const b of blocks) await fh.write(data(b), 0, BLOCK, b * BLOCK);
    } finally {
      await fh.close();
    }
  }

  async function materialise(name: string, handover?: 'copy' | 'background-copy' | 'take') {
    const to = join(t.dir, name);
    const r = await materialiseCached({
      ...(handover ? { handover } : {}),
      client,
      kek: await kek(t.home),
      app: 'web',
      point: await client.point('web', 'latest'),
      volume: 'a',
      cacheDir,
      to,
    });
    return { ...r, image: await readFile(to) };
  }

  it('fetches everything once, then only the blocks changed since, with byte-exact images', async () => {
    const first = await materialise('one.img');
    expect(first.from).toBeUndefined();
    expect(digest(first.image)).toBe(digest(await readFile(source)));

    // three blocks get new data, one becomes zeros (the cached copy must lose its old data)
    await overwrite([2, 9, 30], () => randomBytes(BLOCK));
    await overwrite([5], () => Buffer.alloc(BLOCK));
    await ship();
    const second = await materialise('two.img');
    expect(second.from).toBe(1);
    expect(second.blocksFetched).toBe(4);
    expect(digest(second.image)).toBe(digest(await readFile(source)));
    // the first operation's own copy is untouched by the second
    expect(digest(await readFile(join(t.dir, 'one.img')))).toBe(digest(first.image));
  });

  it('rebuilds a cache that does not match its point in full, never handing out wrong bytes', async () => {
    await materialise('one.img');
    // the cached MACs no longer describe the cached image: the digest check must catch it
    const macs = await readFile(join(cacheDir, 'a.macs'));
    macs[0] = (macs[0] as number) ^ 1;
    await writeFile(join(cacheDir, 'a.macs'), macs);
    await overwrite([1], () => randomBytes(BLOCK));
    await ship();
    const r = await materialise('two.img');
    expect(r.from).toBeUndefined();
    expect(r.blocksFetched).toBeGreaterThan(SIZE / BLOCK / 2);
    expect(digest(r.image)).toBe(digest(await readFile(source)));
  });

  it('does not trust a cache left mid-update by a crash', async () => {
    await materialise('one.img');
    const statePath = join(cacheDir, 'a.json');
    const state = JSON.parse(await readFile(statePath, 'utf8'));
    await writeFile(statePath, JSON.stringify({ ...state, clean: false }));
    const r = await materialise('two.img');
    expect(r.from).toBeUndefined();
    expect(digest(r.image)).toBe(digest(await readFile(source)));
  });

  it('hands a failover the cached image itself, and a drill a low-priority copy', async () => {
    await materialise('one.img');
    const drill = await materialise('drill.img', 'background-copy');
    expect(digest(drill.image)).toBe(digest(await readFile(source)));
    const failover = await materialise('failover.img', 'take');
    expect(failover.from).toBe(1);
    expect(digest(failover.image)).toBe(digest(await readFile(source)));
    // the cache gave its image away: the next operation starts from nothing, and is right
    await expect(readFile(join(cacheDir, 'a.json'))).rejects.toThrow();
    await expect(readFile(join(cacheDir, 'a.img'))).rejects.toThrow();
    const next = await materialise('next.img');
    expect(next.from).toBeUndefined();
    expect(digest(next.image)).toBe(digest(await readFile(source)));
    // and the failover's image is its own: writing to it does not reach the new cache
    await writeFile(join(t.dir, 'failover.img'), Buffer.alloc(SIZE, 7));
    expect(digest(await readFile(join(cacheDir, 'a.img')))).toBe(digest(await readFile(source)));
  });

  async function warm(): Promise<Record<string, unknown>> {
    const r = await dr(['--home', t.home, 'warm', '--once', '--json'], { DR_LOG_LEVEL: 'silent' });
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    return JSON.parse(r.out);
  }

  it('`dr warm` keeps the cache at the latest consistent point; an operation then fetches nothing', async () => {
    const stored = (await client.points('web'))[0]?.volumes.a?.blocksChanged; // zero blocks are not
    expect(await warm()).toMatchObject({
      app: 'web',
      point: 1,
      volumes: [{ volume: 'a', blocksFetched: stored }],
    });
    await overwrite([3, 4], () => randomBytes(BLOCK));
    await ship();
    expect(await warm()).toMatchObject({
      point: 2,
      volumes: [{ volume: 'a', from: 1, blocksFetched: 2 }],
    });
    expect(await warm()).toMatchObject({ point: 2, volumes: [{ volume: 'a', blocksFetched: 0 }] });
    const r = await materialise('failover.img', 'take');
    expect(r).toMatchObject({ from: 2, blocksFetched: 0 });
    expect(digest(r.image)).toBe(digest(await readFile(source)));
  });

  it('`dr warm` leaves a cache in use, and a failed-over app, alone', async () => {
    await mkdir(cacheDir, { recursive: true });
    await writeFile(join(cacheDir, 'lock'), String(process.pid)); // a live holder
    expect(await warm()).toMatchObject({ skipped: 'a drill or failover holds the cache' });
    await rm(join(cacheDir, 'lock'));
    await client.setProtection('web', { state: 'failed-over', opId: 'op-warmtest1' });
    expect(await warm()).toMatchObject({ skipped: 'failed over by op-warmtest1' });
    await expect(readFile(join(cacheDir, 'a.img'))).rejects.toThrow();
  });
});
