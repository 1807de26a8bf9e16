import { readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dr, scribble, type TestHome, testHome, writeImage } from '../helpers/lifeboat-home.js';
import { restoreLatest } from '../helpers/restore.js';

const quiet = { DR_LOG_LEVEL: 'silent' };

describe('replication end to end (dr init → app add → gateway → agent → points → restore → verify)', () => {
  let t: TestHome;
  beforeEach(async () => {
    t = await testHome();
  });
  afterEach(async () => {
    await t.cleanup();
  });

  it('restores every point of a two-volume app byte-exact, and later cycles ship only changes', async () => {
    const a = join(t.dir, 'a.img');
    const b = join(t.dir, 'b.img');
    await writeImage(a, 8 * 1024 * 1024 + 12345, 1); // not a multiple of the block size
    await writeImage(b, 4 * 1024 * 1024, 2);
    expect(
      (
        await dr([
          '--home',
          t.home,
          'app',
          'add',
          'web',
          '--volume',
          `a=${a}`,
          '--volume',
          `b=${b}`,
        ])
      ).code,
    ).toBe(0);
    await t.startGateway();

    const first = await dr(['--home', t.home, 'agent', '--app', 'web', '--once', '--json'], quiet);
    expect(first.err).toBe('');
    expect(first.code).toBe(0);
    const r1 = JSON.parse(first.out);
    expect(r1.point.id).toBe(1);
    const a1 = await readFile(a);
    const b1 = await readFile(b);

    await scribble(a, 20);
    const second = JSON.parse(
      (await dr(['--home', t.home, 'agent', '--app', 'web', '--once', '--json'], quiet)).out,
    );
    expect(second.point.id).toBe(2);
    // 20 scribbles touch at most 20 blocks of 64 KiB; the first sync shipped ~10 MiB.
    expect(second.blocksSent).toBeLessThanOrEqual(20);
    expect(second.blocksSent).toBeGreaterThan(0);
    expect(second.bytesSent).toBeLessThan(r1.bytesSent / 5);

    const idle = JSON.parse(
      (await dr(['--home', t.home, 'agent', '--app', 'web', '--once', '--json'], quiet)).out,
    );
    // Nothing changed: no third point, the second is still the state now.
    expect(idle.blocksSent).toBe(0);
    expect(idle.unchanged).toBe(true);
    expect(idle.point.id).toBe(2);

    const points = JSON.parse((await dr(['--home', t.home, 'points', 'web', '--json'])).out);
    expect(points.map((p: { id: number }) => p.id)).toEqual([1, 2]);
    expect(points[0].label).toBe('fuzzy');
    expect(points[0].volumes.a.bytesChanged).toBeGreaterThan(0);

    const out1 = join(t.dir, 'a-1.img');
    const restored = await dr(
      ['--home', t.home, 'restore', 'web', '--point', '1', '--volume', 'a', '--to', out1],
      quiet,
    );
    expect(restored.code).toBe(0);
    expect((await readFile(out1)).equals(a1)).toBe(true);
    // Zero runs are holes: the image uses fewer blocks on disk than its size.
    const st = await stat(out1);
    expect(st.blocks * 512).toBeLessThan(st.size);

    const outLatest = join(t.dir, 'a-latest.img');
    expect((await restoreLatest(t, 'a', outLatest)).code).toBe(0);
    expect((await readFile(outLatest)).equals(await readFile(a))).toBe(true);
    const outB = join(t.dir, 'b-1.img');
    expect(
      (
        await dr(
          ['--home', t.home, 'restore', 'web', '--point', '1', '--volume', 'b', '--to', outB],
          quiet,
        )
      ).code,
    ).toBe(0);
    expect((await readFile(outB)).equals(b1)).toBe(true);

    const verified = await dr(['--home', t.home, 'verify', 'web', '--source'], quiet);
    expect(verified.out).toContain('verify: ok');
    expect(verified.code).toBe(0);

    // The source moved on after the point: --source names the block that differs.
    await scribble(b, 1);
    const drift = await dr(['--home', t.home, 'verify', 'web', '--source'], quiet);
    expect(drift.code).toBe(1);
    expect(drift.out).toMatch(/MISMATCH web\/b block \d+: source block differs/);

    const status = JSON.parse((await dr(['--home', t.home, 'status', 'web', '--json'])).out);
    expect(status.lastPoint.id).toBe(2);
    expect(status.bytesShipped).toBeGreaterThan(10 * 1024 * 1024);
    // Only fuzzy points (no freeze configured): no consistent point, so no RPO to show.
    expect(status.lastConsistentPoint).toBeNull();
    expect(status.lagSeconds).toBeNull();
  });

  it('refuses to restore onto an existing file without --force, and leaves it untouched', async () => {
    const a = join(t.dir, 'a.img');
    await writeImage(a, 1024 * 1024, 3);
    await dr(['--home', t.home, 'app', 'add', 'web', '--volume', `a=${a}`]);
    await t.startGateway();
    expect((await dr(['--home', t.home, 'agent', '--app', 'web', '--once'], quiet)).code).toBe(0);
    const target = join(t.dir, 'existing.img');
    await writeFile(target, 'precious');
    const refused = await restoreLatest(t, 'a', target);
    expect(refused.code).toBe(2);
    expect(refused.err).toContain(`${target} already exists`);
    expect(refused.err).toContain('--force');
    expect(await readFile(target, 'utf8')).toBe('precious');
    const forced = await dr(
      [
        '--home',
        t.home,
        'restore',
        'web',
        '--point',
        'latest',
        '--allow-fuzzy',
        '--volume',
        'a',
        '--to',
        target,
        '--force',
      ],
      quiet,
    );
    expect(forced.code).toBe(0);
    expect((await readFile(target)).equals(await readFile(a))).toBe(true);
  });

  it('names a missing or unusable volume path and how to fix it', async () => {
    const a = join(t.dir, 'a.img');
    await writeImage(a, 1024 * 1024, 4);
    await dr(['--home', t.home, 'app', 'add', 'web', '--volume', `a=${a}`]);
    await t.startGateway();
    await truncate(a, 0);
    await writeFile(a, '');
    const { rm } = await import('node:fs/promises');
    await rm(a);
    const missing = await dr(['--home', t.home, 'agent', '--app', 'web', '--once'], quiet);
    expect(missing.code).toBe(2);
    expect(missing.err).toContain(`volume a (${a}) does not exist`);
    expect(missing.err).toContain('To resolve');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(a);
    const dir = await dr(['--home', t.home, 'agent', '--app', 'web', '--once'], quiet);
    expect(dir.code).toBe(2);
    expect(dir.err).toContain('is neither an image file nor a block device');
  });

  it('asks for a point id it can use', async () => {
    const a = join(t.dir, 'a.img');
    await writeImage(a, 256 * 1024, 5);
    await dr(['--home', t.home, 'app', 'add', 'web', '--volume', `a=${a}`]);
    await t.startGateway();
    await dr(['--home', t.home, 'agent', '--app', 'web', '--once'], quiet);
    const restoreAttempt = (point: string, volume: string, ...extra: string[]) =>
      dr([
        '--home',
        t.home,
        'restore',
        'web',
        '--point',
        point,
        ...extra,
        '--volume',
        volume,
        '--to',
        join(t.dir, 'x'),
      ]);
    const fuzzyOnly = await restoreAttempt('latest', 'a');
    expect(fuzzyOnly.code).toBe(2);
    expect(fuzzyOnly.err).toContain('web has no consistent recovery point yet');
    expect(fuzzyOnly.err).toContain('--allow-fuzzy');
    const bad = await restoreAttempt('yesterday', 'a');
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('--point "yesterday" is not a point id');
    const unknown = await restoreAttempt('99', 'a');
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/99/);
    expect(unknown.err).toContain('dr points');
    const vol = await restoreAttempt('latest', 'nope', '--allow-fuzzy');
    expect(vol.code).toBe(2);
    expect(vol.err).toContain('"nope"');
  });
});
