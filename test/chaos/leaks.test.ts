// The chaos suite's leak checks find what a round leaves behind, and a run names the round.
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import { tool } from '../helpers/loop-device.js';
import { redisUnavailable, startRedis, type TestRedis } from '../helpers/redis-server.js';
import { skipBecause } from '../helpers/skip.js';
import { APP } from './chaos-rig.js';
import { attachmentsUnder, keysWithoutTtl, leakedTempFiles, newAttachments } from './leaks.js';
import { runChaos } from './run-chaos.js';

/** The pid of a process that has ended (its temp files are nobody's). */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid as number;
}

describe('chaos leak checks', () => {
  let dir: string;
  let redis: TestRedis | undefined;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lifeboat-leaks-'));
  });

  afterEach(async () => {
    await redis?.stop();
    redis = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it('reports temp files of dead writers, not those a live process is writing', async () => {
    const dead = await deadPid();
    await mkdir(join(dir, 'store'));
    await writeFile(join(dir, 'store', `catalog.json.tmp-${dead}-17`), '');
    await writeFile(join(dir, 'store', `catalog.json.tmp-${process.pid}-18`), '');
    await writeFile(join(dir, `a.img.lifeboat-partial-${dead}`), '');
    await writeFile(join(dir, 'a.img'), '');
    expect((await leakedTempFiles(dir, [process.pid])).sort()).toEqual(
      [
        `temp file ${join(dir, `a.img.lifeboat-partial-${dead}`)}`,
        `temp file ${join(dir, 'store', `catalog.json.tmp-${dead}-17`)}`,
      ].sort(),
    );
  });

  it('reports Redis keys without a TTL unless the run may keep them', async (ctx: TestContext) => {
    const why = redisUnavailable();
    if (why) skipBecause(ctx, why);
    redis = await startRedis();
    const r = new Redis(redis.url);
    try {
      await r.hset('lifeboat:replication', APP, '{}');
      await r.set('lifeboat:lock:app', 'x');
      await r.set('lifeboat:cancel:op-1', 'x', 'EX', 60);
      expect(await keysWithoutTtl(redis.url, [/^lifeboat:replication$/])).toEqual([
        'Redis key lifeboat:lock:app (no TTL)',
      ]);
    } finally {
      r.disconnect();
    }
    const down = redis.url;
    await redis.stop();
    redis = undefined;
    await expect(keysWithoutTtl(down, [])).rejects.toThrow();
  });

  it('reports a mount a round added under the run directory', async (ctx: TestContext) => {
    const before = await attachmentsUnder(dir);
    const mnt = join(dir, 'left-mounted');
    await mkdir(mnt);
    const mounted = await tool('mount', ['-t', 'tmpfs', 'none', mnt]).then(
      () => true,
      () => false, // not root, or no mount here
    );
    if (!mounted) skipBecause(ctx, 'cannot mount a tmpfs here (needs root)');
    try {
      expect(await newAttachments(dir, before)).toEqual([`mount ${mnt}`]);
    } finally {
      await tool('umount', [mnt]);
    }
    expect(await newAttachments(dir, before)).toEqual([]);
  });

  it('names the round that leaked, right after it', {
    timeout: 300_000,
  }, async (ctx: TestContext) => {
    const why = redisUnavailable();
    if (why) skipBecause(ctx, why);
    const dead = await deadPid();
    const report = await runChaos({
      rounds: 2,
      seed: 7,
      kinds: ['agent-kill', 'writer-restart'],
      volumes: 'image',
      volumeMiB: 16,
      samplePerRound: 0,
      recoverMs: 60_000,
      roundEnd: async (round, rig) => {
        if (round !== 1) return;
        const r = new Redis(rig.redisUrl);
        await r.set('lifeboat:planted', 'x').finally(() => r.disconnect());
        await writeFile(join(rig.t.dir, `planted.tmp-${dead}-1`), '');
      },
    });
    const round1 = report.failures.filter((f) => f.startsWith('round 1 ('));
    expect(round1.some((f) => f.endsWith('leaked Redis key lifeboat:planted (no TTL)'))).toBe(true);
    expect(
      round1.some((f) => f.includes(`leaked temp file `) && f.endsWith(`planted.tmp-${dead}-1`)),
    ).toBe(true);
    // Round 2 did not leak anything new: what round 1 left is reported again, nothing else.
    const round2 = report.failures.filter((f) => f.startsWith('round 2 ('));
    expect(round2.every((f) => f.includes('lifeboat:planted') || f.includes('planted.tmp-'))).toBe(
      true,
    );
  });
});
