import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isDrError } from '../../../../core/errors.js';
import {
  removeStaleInstances,
  TraceTracker,
} from '../../../../replicator/capture/trace-tracker.js';
import { skipBecause } from '../../../helpers/skip.js';
import {
  attachLoop,
  BS,
  children,
  exists,
  holders,
  instances,
  missing,
  tracefs,
  until,
  useTraceRig,
  work,
} from '../../../helpers/trace-rig.js';

useTraceRig();

describe('stale instances', () => {
  it('removes those of dead processes, even one a leftover reader keeps open, and keeps live ones', async (ctx) => {
    if (missing) return skipBecause(ctx, missing);
    const gone = spawn('true');
    const deadPid = await new Promise<number>((resolve) =>
      gone.on('exit', () => resolve(gone.pid ?? 0)),
    );
    const dead = `lifeboat-${deadPid}-0badc0de`;
    const live = `lifeboat-${process.pid}-0c0ffee0`;
    for (const name of [dead, live]) {
      await mkdir(join(tracefs, 'instances', name));
      instances.push(join(tracefs, 'instances', name));
    }
    // What a SIGKILLed agent leaves: its cat still blocked on trace_pipe, its stdout pipe unread.
    const pipe = join(tracefs, 'instances', dead, 'trace_pipe');
    const orphan = spawn('cat', [pipe], { stdio: ['ignore', 'pipe', 'ignore'] });
    children.push(orphan);
    const orphanExit = new Promise<void>((resolve) => orphan.on('exit', () => resolve()));
    orphan.stdout.destroy();
    await until('the leftover reader opens trace_pipe', async () =>
      (await holders(pipe)).includes(orphan.pid ?? -1),
    );

    const removed = await removeStaleInstances(tracefs);

    expect(removed).toContain(dead);
    expect(removed).not.toContain(live);
    expect(await exists(join(tracefs, 'instances', dead))).toBe(false);
    expect(await exists(join(tracefs, 'instances', live))).toBe(true);
    await orphanExit;
  });
});

describe('where tracing cannot be used', () => {
  it('unavailable() and start() name a regular file as not a block device', async () => {
    const file = join(work, 'plain.img');
    await writeFile(file, Buffer.alloc(BS));

    expect(await TraceTracker.unavailable(file)).toMatch(
      /plain\.img is not a block device.*losetup/,
    );
    const err = await TraceTracker.start({ device: file, blockSize: BS }).catch((e: unknown) => e);
    expect(isDrError(err, 'volume_unreadable')).toBe(true);
    expect(err).toMatchObject({ subject: file });
    expect(String(err)).toContain('To resolve, attach it as a loop device');
  });

  it('unavailable() says a missing device does not exist', async () => {
    expect(await TraceTracker.unavailable(join(work, 'nothing'))).toMatch(/nothing does not exist/);
  });

  it('unavailable() gives the mount command where tracefs is not mounted', async (ctx) => {
    if (missing) return skipBecause(ctx, missing);
    const dev = await attachLoop();
    const empty = join(work, `not-tracefs-${Date.now()}`);
    await mkdir(empty);

    expect(await TraceTracker.unavailable(dev, tracefs)).toBeUndefined();
    expect(await TraceTracker.unavailable(dev, empty)).toBe(
      `tracefs is not mounted at ${empty}; mount it with \`mount -t tracefs nodev ${empty}\``,
    );
  });

  it('start() refuses a block size that is not a power of two', async () => {
    const err = await TraceTracker.start({ device: '/dev/null', blockSize: 3000 }).catch(
      (e: unknown) => e,
    );
    expect(isDrError(err, 'usage')).toBe(true);
    expect(String(err)).toContain('3000');
  });
});
