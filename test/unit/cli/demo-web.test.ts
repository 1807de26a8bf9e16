import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  encodeView,
  readViews,
  SLOT,
  SLOTS,
  slotOffset,
  unbroken,
  WEB_IMAGE_SIZE,
} from '../../../cli/demo/web-views.js';

const check = fileURLToPath(new URL('../../../dist/cli/demo/web-check.js', import.meta.url));
const front = fileURLToPath(new URL('../../../dist/cli/demo/web-front.js', import.meta.url));

/** An image holding views `from`..`to` (the ring wraps past SLOTS). */
function image(from: number, to: number): Buffer {
  const img = Buffer.alloc(WEB_IMAGE_SIZE);
  for (let seq = from; seq <= to; seq++)
    encodeView({ seq, timeMs: 1_000 * seq, orderId: seq * 2 }).copy(img, slotOffset(seq));
  return img;
}

describe("demo-web's page views", () => {
  it('round-trips views through the ring, the newest SLOTS kept', () => {
    const { views, bad } = readViews(image(1, SLOTS + 10));
    expect(bad).toEqual([]);
    expect(views).toHaveLength(SLOTS);
    expect(views[0]).toEqual({ seq: 11, timeMs: 11_000, orderId: 22 });
    expect(views.at(-1)?.seq).toBe(SLOTS + 10);
    expect(unbroken(views)).toBe(true);
    expect(readViews(Buffer.alloc(WEB_IMAGE_SIZE)).views).toEqual([]);
  });

  it('finds a torn or foreign slot and a broken run', () => {
    const torn = image(1, 20);
    torn[slotOffset(7) + 2] = 0x39; // one digit changed: the digest no longer holds
    expect(readViews(torn).bad).toEqual([6]);
    const foreign = image(1, 3);
    foreign.write('not a view', 5 * SLOT);
    expect(readViews(foreign).bad).toEqual([5]);
    const gap = image(1, 20);
    gap.fill(0, slotOffset(10), slotOffset(10) + SLOT);
    expect(unbroken(readViews(gap).views)).toBe(false);
  });
});

describe('web-check on a recovered image', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'demo-web-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const run = (img: string, args = ['--state', join(dir, 'none.json')]) =>
    spawnSync(process.execPath, [check, ...args], {
      encoding: 'utf8',
      env: { ...process.env, DR_VOLUME_DATA: img, DR_MODE: 'drill' },
    });

  it('passes a sound copy (saying it could not compare with a front that is not running)', async () => {
    await writeFile(join(dir, 'ok.img'), image(1, 50));
    const r = run(join(dir, 'ok.img'));
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('page views 1-50 recovered, all sound; the live web front was not');
    await writeFile(join(dir, 'empty.img'), Buffer.alloc(WEB_IMAGE_SIZE));
    expect(run(join(dir, 'empty.img')).stdout).toContain('holds no page views yet');
  });

  it('fails a torn slot, a broken run and a missing image; usage without arguments', async () => {
    const torn = image(1, 20);
    torn.write('x', slotOffset(3) + 1);
    await writeFile(join(dir, 'torn.img'), torn);
    const t = run(join(dir, 'torn.img'));
    expect(t.status).toBe(1);
    expect(t.stdout).toContain('1 slot(s) of the recovered image are neither empty nor a sound');
    const gap = image(1, 20);
    gap.fill(0, slotOffset(10), slotOffset(10) + SLOT);
    await writeFile(join(dir, 'gap.img'), gap);
    const g = run(join(dir, 'gap.img'));
    expect(g.status).toBe(1);
    expect(g.stdout).toContain('not one unbroken run');
    const m = run(join(dir, 'missing.img'));
    expect(m.status).toBe(1);
    expect(m.stdout).toMatch(/^demo-web check: .*ENOENT/);
    const u = run(join(dir, 'ok.img'), []);
    expect(u.status).toBe(2);
    expect(u.stderr).toContain('usage: DR_VOLUME_DATA=IMAGE web-check --state STATE_FILE');
  });

  it('the front refuses a missing argument or a bad rate with its usage', () => {
    for (const args of [[], ['--image', 'x', '--state', 's', '--upstream', 'u']]) {
      const r = spawnSync(process.execPath, [front, ...args], { encoding: 'utf8' });
      expect(r.status).toBe(2);
      expect(r.stderr).toContain('usage: web-front --image PATH');
    }
    const rate = spawnSync(
      process.execPath,
      [
        front,
        ...['--image', 'x', '--state', 's', '--upstream', 'u', '--shop-state', 'p'],
        '--rate',
        '0',
      ],
      { encoding: 'utf8' },
    );
    expect(rate.status).toBe(2);
  });
});
