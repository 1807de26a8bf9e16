// The link end to end: zstd and lz4 records in one store, the bandwidth cap, and its bad inputs.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dr, type TestHome, testHome, updateConfig, writeImage } from '../helpers/lifeboat-home.js';
import { startDr, stopAll } from '../helpers/processes.js';
import { waitFor } from '../helpers/wait-for.js';

const quiet = { DR_LOG_LEVEL: 'silent' };
const MiB = 1024 * 1024;

/** `size` bytes of text-like data (log lines), as a disk full of files holds. */
function textImage(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  let o = 0;
  let n = seed;
  while (o < size) {
    n = (n * 1103515245 + 12345) & 0x7fffffff;
    o += out.write(`${n} GET /api/orders/${n % 9973} 200 ${n % 517}ms user=${n % 331}\n`, o);
  }
  return out;
}

describe('the link: zstd, lz4 readable, bandwidth cap', () => {
  let t: TestHome;
  beforeEach(async () => {
    t = await testHome();
  });
  afterEach(async () => {
    await stopAll();
    await t.cleanup();
  });

  async function addApp(path: string): Promise<void> {
    expect((await dr(['--home', t.home, 'app', 'add', 'web', '--volume', `d=${path}`])).code).toBe(
      0,
    );
  }

  async function once(): Promise<{ bytesSent: number; point: { id: number } }> {
    const r = await dr(['--home', t.home, 'agent', '--app', 'web', '--once', '--json'], quiet);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    return JSON.parse(r.out);
  }

  async function restore(point: number): Promise<Buffer> {
    const to = join(t.dir, `restored-${point}.img`);
    const r = await dr(
      ['--home', t.home, 'restore', 'web', '--point', String(point), '--volume', 'd', '--to', to],
      quiet,
    );
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    return readFile(to);
  }

  it('restores a store written with lz4 and then zstd byte-exact, and zstd sends fewer bytes', async () => {
    const disk = join(t.dir, 'd.img');
    await writeFile(disk, textImage(4 * MiB, 1));
    await addApp(disk);
    await t.startGateway();
    await updateConfig(t.home, (doc) => doc.setIn(['agent', 'compression'], 'lz4'));
    const lz4 = await once();
    const v1 = await readFile(disk);
    // The same kind of data, all of it rewritten: the second point is all zstd.
    await writeFile(disk, textImage(4 * MiB, 2));
    await updateConfig(t.home, (doc) => doc.setIn(['agent', 'compression'], 'zstd'));
    const zstd = await once();
    const v2 = await readFile(disk);
    expect(zstd.bytesSent).toBeLessThan(lz4.bytesSent);
    expect((await restore(lz4.point.id)).equals(v1)).toBe(true);
    expect((await restore(zstd.point.id)).equals(v2)).toBe(true);
    const verify = await dr(['--home', t.home, 'verify', 'web'], quiet);
    expect(verify.code).toBe(0);
  });

  it.each([
    ['0', '--max-rate 0: 0 is not a cap above zero'],
    ['fast', '--max-rate fast: fast is not a rate'],
    ['"10MiB/s 9-17"', '--max-rate "10MiB/s 9-17": 9-17 is not a day or days like mon-fri'],
    ['10MiB/s 08:00-26:00', '--max-rate 10MiB/s 08:00-26:00: 08:00-26:00 is not a time window'],
  ])('refuses --max-rate %s with one line naming it and the remedy', async (rate, message) => {
    const disk = join(t.dir, 'd.img');
    await writeImage(disk, MiB);
    await addApp(disk);
    const r = await dr(
      ['--home', t.home, 'agent', '--app', 'web', '--once', '--max-rate', rate.replace(/"/g, '')],
      quiet,
    );
    expect(r.code).not.toBe(0);
    expect(r.err).toContain(message.replace(/"/g, ''));
    expect(r.err).toContain('write a rate like 20MiB/s');
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.out).toBe('');
  });

  it('status says when the cap is what holds the RPO back', async () => {
    const disk = join(t.dir, 'd.img');
    await writeImage(disk, 4 * MiB, 3);
    await addApp(disk);
    // Small batches, so the cap has several to hold back (the first goes at once).
    await updateConfig(t.home, (doc) => doc.setIn(['agent', 'batchSize'], '256KiB'));
    await t.startGateway();
    const agent = startDr([
      '--home',
      t.home,
      'agent',
      '--app',
      'web',
      '--max-rate',
      '64KiB/s',
      '--interval',
      '1s',
    ]);
    const status = await waitFor(
      'the agent to report its cap holding batches back',
      async () => {
        const r = await dr(['--home', t.home, 'status', 'web', '--json']);
        if (r.code !== 0) return undefined;
        const s = JSON.parse(r.out);
        return s.link?.heldFraction >= 0.25 ? s : undefined;
      },
      60_000,
    );
    expect(status.link.capBytesPerSec).toBe(64 * 1024);
    expect(status.link.cap).toBe('64KiB/s');
    expect(status.link.compression).toMatch(/^zstd:\d+ \(adaptive\)$/);
    const text = await dr(['--home', t.home, 'status', 'web']);
    expect(text.out).toMatch(
      /bandwidth cap 64\.0 KiB\/s holds the RPO back: batches waited for it \d+% of the time/,
    );
    expect(await agent.stop()).toBe(0);
  }, 90_000);
});
