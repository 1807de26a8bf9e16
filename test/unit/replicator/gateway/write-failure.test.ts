import { execFileSync } from 'node:child_process';
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isDrError, systemCode } from '../../../../core/errors.js';
import { BlockStore } from '../../../../replicator/gateway/block-store.js';
import { skipBecause } from '../../../helpers/skip.js';
import {
  APP,
  append,
  appOf,
  type Fixture,
  makeFixture,
  plaintexts,
  registerTwo,
  volumesAt,
} from './store-fixture.js';

function tryRun(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch {
    // The tool is missing or not permitted here: the test that needs it is skipped.
    return false;
  }
}

const hasPrlimit = tryRun('prlimit', ['--version']);

let fx: Fixture;
beforeEach(async () => {
  fx = await makeFixture();
});
afterEach(async () => {
  await fx.cleanup();
});

describe.each([
  // RLIMIT_FSIZE makes the kernel cut a buffered write short, then fail it (EFBIG): a real partial frame.
  { how: 'through the page cache', directIo: false, codes: ['EFBIG'] },
  // A direct write cut to an unaligned length is refused whole (EINVAL), or fails like a buffered one.
  { how: 'with direct I/O', directIo: true, codes: ['EFBIG', 'EINVAL'] },
])('a failed segment write $how', ({ directIo, codes }) => {
  it('is cut off the segment, rethrown, and the store stays usable', async (ctx) => {
    if (!hasPrlimit) skipBecause(ctx, 'prlimit (util-linux) is missing or not permitted here');
    const store = await BlockStore.open({ dir: fx.storeDir, directIo });
    const app = await store.ensureApp(APP);
    const v = await registerTwo(fx, app);
    const truth = new Map<string, Buffer>();
    await append(fx, app, 1, [{ volume: v.disk, block: 0 }], truth);
    const size = app.stats().segmentBytes;
    const segment = join(fx.storeDir, 'apps', APP, 'segments', '00000001.seg');

    execFileSync('prlimit', ['--pid', String(process.pid), `--fsize=${size + 1000}:`]);
    let err: unknown;
    try {
      await append(fx, app, 2, [
        { volume: v.disk, block: 1 },
        { volume: v.disk, block: 2 },
      ]);
    } catch (e) {
      err = e;
    } finally {
      execFileSync('prlimit', ['--pid', String(process.pid), '--fsize=unlimited:']);
    }
    expect(codes).toContain(systemCode(err));
    expect((await stat(segment)).size).toBe(size);
    expect(app.stats().pendingSeqs).toEqual([1]);

    expect(await append(fx, app, 2, [{ volume: v.disk, block: 1 }], truth)).toEqual({
      duplicate: false,
    });
    await app.commitPoint({ upToSeq: 2, label: 'fuzzy', volumes: volumesAt(v) });
    await store.close();
    const again = await BlockStore.open({ dir: fx.storeDir });
    const reopened = appOf(again);
    const plain = await plaintexts(fx, reopened, v.disk, await reopened.pointEntries(1, 'disk'));
    expect([...plain.keys()]).toEqual([0, 1]);
    for (const [block, p] of plain) expect(p).toEqual(truth.get(`disk:${block}`));
    await again.close();
  });
});

describe('a full disk', () => {
  let mnt: string;
  let mounted = false;
  beforeEach(async () => {
    mnt = join(fx.root, 'small');
    await mkdir(mnt);
    // Mounting needs privileges; where they are missing the test is skipped.
    mounted = tryRun('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mnt]);
  });
  afterEach(() => {
    if (mounted) execFileSync('umount', [mnt]);
  });

  it('answers gateway_full, leaves the segment as it was, and works again once space is freed', async (ctx) => {
    if (!mounted) skipBecause(ctx, 'mounting a small tmpfs needs root (CAP_SYS_ADMIN)');
    const filler = join(mnt, 'filler');
    await writeFile(filler, Buffer.alloc(64 * 1024));
    const store = await BlockStore.open({ dir: join(mnt, 'store') });
    const app = await store.ensureApp(APP);
    const v = await registerTwo(fx, app);
    let err: unknown;
    let seq = 0;
    let size = 0;
    for (seq = 1; seq < 100; seq++) {
      size = app.stats().segmentBytes;
      try {
        await append(
          fx,
          app,
          seq,
          [0, 1, 2, 3].map((block) => ({ volume: v.disk, block })),
        );
      } catch (e) {
        err = e;
        break;
      }
    }
    expect(isDrError(err, 'gateway_full')).toBe(true);
    expect(String(err)).toContain('To resolve, free space');
    expect(app.stats().segmentBytes).toBe(size);
    expect((await stat(join(mnt, 'store', 'apps', APP, 'segments', '00000001.seg'))).size).toBe(
      size,
    );

    await rm(filler);
    expect(await append(fx, app, seq, [{ volume: v.disk, block: 5 }])).toEqual({
      duplicate: false,
    });
    const p = await app.commitPoint({ upToSeq: seq, label: 'fuzzy', volumes: volumesAt(v) });
    await store.close();
    const again = await BlockStore.open({ dir: join(mnt, 'store') });
    expect(appOf(again).point('latest')).toEqual(p);
    expect((await appOf(again).pointEntries(p.id, 'disk')).map((e) => e.block)).toEqual([
      0, 1, 2, 3, 5,
    ]);
    await again.close();
  });
});
