import { execFileSync } from 'node:child_process';
import { constants } from 'node:fs';
import { mkdir, open, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isDrError } from '../../../../core/errors.js';
import { skipBecause } from '../../../helpers/skip.js';
import {
  attachLoop,
  BS,
  ddRead,
  ddWrite,
  exists,
  holders,
  installed,
  MiB,
  missing,
  mounts,
  range,
  start,
  tool,
  until,
  useTraceRig,
  work,
} from '../../../helpers/trace-rig.js';

useTraceRig();

// Stale instances and where tracing cannot be used are in trace-tracker-unavailable.test.ts.
describe('TraceTracker on a loop device', () => {
  it('reports exactly the blocks written, in its own block size, and not those read', async (ctx) => {
    if (missing) return skipBecause(ctx, missing);
    const dev = await attachLoop();
    const t = await start(dev);
    const big = await start(dev, { blockSize: 64 * 1024 });
    expect(t.drain()).toMatchObject({ unsure: true, reason: 'tracker started' });
    expect(big.drain()).toMatchObject({ unsure: true, reason: 'tracker started' });

    await ddWrite(dev, 2 * BS, BS); // block 2
    await ddWrite(dev, 10 * BS + 1024, 512); // inside block 10
    await ddWrite(dev, 20 * BS - 512, 1024); // the end of block 19 and the start of 20
    await ddRead(dev, 30 * BS, 4 * BS);
    await t.sync();
    await big.sync();

    expect(t.pendingCount()).toBe(4);
    expect(t.drain()).toEqual({ blocks: [2, 10, 19, 20], unsure: false });
    expect(t.pendingCount()).toBe(0);
    expect(t.drain()).toEqual({ blocks: [], unsure: false });
    expect(big.drain()).toEqual({ blocks: [0, 1], unsure: false });
  });

  it('reports discarded and zeroed ranges as changed', async (ctx) => {
    if (missing) return skipBecause(ctx, missing);
    if (!(await installed('blkdiscard'))) return skipBecause(ctx, 'blkdiscard is missing');
    const dev = await attachLoop();
    const t = await start(dev);
    t.drain();

    await tool('blkdiscard', ['-f', '-o', String(40 * BS), '-l', String(16 * BS), dev]);
    await tool('blkdiscard', ['-f', '-z', '-o', String(60 * BS), '-l', String(4 * BS), dev]);
    await t.sync();

    expect(t.drain()).toEqual({ blocks: [...range(40, 55), ...range(60, 63)], unsure: false });
  });

  it('sees only its own device', async (ctx) => {
    if (missing) return skipBecause(ctx, missing);
    const mine = await attachLoop();
    const other = await attachLoop();
    const t = await start(mine);
    t.drain();

    await ddWrite(other, 5 * BS, BS);
    await ddWrite(mine, 7 * BS, BS);
    await t.sync();

    expect(t.drain()).toEqual({ blocks: [7], unsure: false });
  });

  it('sync() waits for a write made durable just before it', async (ctx) => {
    if (missing) return skipBecause(ctx, missing);
    const dev = await attachLoop();
    const t = await start(dev);
    t.drain();

    const fh = await open(dev, constants.O_WRONLY);
    try {
      await fh.write(Buffer.alloc(BS, 0xab), 0, BS, 3 * BS);
      await fh.sync(); // the page cache is written back here: the bio is queued before sync() below
    } finally {
      await fh.close();
    }
    await t.sync();

    expect(t.drain()).toEqual({ blocks: [3], unsure: false });
  });

  it('reports the blocks a file on ext4 was written to', async (ctx) => {
    if (missing) return skipBecause(ctx, missing);
    if (!(await installed('mkfs.ext4', ['-V'])) || !(await installed('filefrag', ['-V'])))
      return skipBecause(ctx, 'e2fsprogs is missing (apt-get install -y e2fsprogs)');
    const dev = await attachLoop(64 * MiB);
    await tool('mkfs.ext4', ['-q', '-F', '-b', String(BS), dev]);
    const mnt = join(work, `mnt-${Date.now()}`);
    await mkdir(mnt);
    await tool('mount', [dev, mnt]);
    mounts.push(mnt);
    const t = await start(dev);
    t.drain();

    const file = join(mnt, 'data');
    const fh = await open(file, 'w');
    try {
      await fh.write(Buffer.alloc(16 * BS, 0x5a));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await t.sync();
    const drained = t.drain();

    // ext4 blocks are the tracker's blocks here (both 4 KiB, the file system starts at 0).
    const extents = await tool('filefrag', ['-v', '-b4096', file]);
    const fileBlocks = [
      ...extents.matchAll(/^\s*\d+:\s+\d+\.\.\s*\d+:\s+(\d+)\.\.\s*(\d+):/gm),
    ].flatMap((m) => range(Number(m[1]), Number(m[2])));
    expect(fileBlocks).toHaveLength(16);
    expect(drained.unsure).toBe(false);
    expect(drained.blocks).toEqual(expect.arrayContaining(fileBlocks));
  });

  it('close() ends the reader and removes the instance, and can be called again', async (ctx) => {
    if (missing) return skipBecause(ctx, missing);
    const dev = await attachLoop();
    const t = await start(dev);
    expect(basename(t.instance)).toMatch(new RegExp(`^lifeboat-${process.pid}-[0-9a-f]+$`));
    expect((await stat(t.instance)).isDirectory()).toBe(true);
    const pipe = join(t.instance, 'trace_pipe');
    expect(await holders(pipe)).toHaveLength(1);

    await t.close();
    await t.close();

    expect(await exists(t.instance)).toBe(false);
    expect(await holders(pipe)).toEqual([]);
    const err = await t.sync().catch((e: unknown) => e);
    expect(isDrError(err, 'usage')).toBe(true);
    expect(String(err)).toContain(dev);
    expect(t.drain()).toMatchObject({
      unsure: true,
      reason: expect.stringContaining('tracker closed'),
    });
  });

  it('stays unsure, and refuses sync(), once its reader has been killed', async (ctx) => {
    if (missing) return skipBecause(ctx, missing);
    const dev = await attachLoop();
    const t = await start(dev);
    t.drain();
    const [reader] = await holders(join(t.instance, 'trace_pipe'));
    expect(reader).toBeDefined();

    process.kill(reader as number, 'SIGKILL');
    // Every drain from now on is unsure, so polling drain() loses nothing.
    await until('the tracker notices', async () => t.drain().unsure);
    const err = await t.sync().catch((e: unknown) => e);

    expect(isDrError(err, 'usage')).toBe(true);
    expect(String(err)).toMatch(/trace reader stopped \(SIGKILL\)/);
    for (const drained of [t.drain(), t.drain()]) {
      expect(drained).toMatchObject({ unsure: true, reason: 'trace reader stopped (SIGKILL)' });
    }
  });

  it('marks the drain unsure when the trace buffer overruns, and is sure again after', async (ctx) => {
    if (missing) return skipBecause(ctx, missing);
    const dev = await attachLoop();
    const t = await start(dev, { bufferKiB: 4 });
    t.drain();

    // The synchronous call blocks this event loop, so nothing empties the reader's pipe while
    // dd queues 16384 writes: the reader stalls and a few KiB of ring buffer cannot hold them.
    execFileSync(
      'dd',
      ['if=/dev/zero', `of=${dev}`, 'bs=512', 'count=16384', 'oflag=direct', 'status=none'],
      { timeout: 60_000 },
    );
    await t.sync(10_000);
    const stormy = t.drain();
    expect(stormy.unsure).toBe(true);
    expect(stormy.reason).toMatch(/^trace buffer overran: \d+ events lost$/);

    await ddWrite(dev, 3 * BS, BS);
    await t.sync();
    expect(t.drain()).toEqual({ blocks: [3], unsure: false });
  });
});
