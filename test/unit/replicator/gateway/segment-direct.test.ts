import { randomBytes } from 'node:crypto';
import { appendFile, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLog } from '../../../../core/log.js';
import {
  FRAME_BATCH,
  FRAME_HEAD_BYTES,
  SegmentLog,
  segmentFileName,
} from '../../../../replicator/gateway/segment-log.js';
import { skipBecause } from '../../../helpers/skip.js';

/** Frame sizes around page boundaries, so that every way of straddling one occurs. */
const SIZES = [1, 4095 - 13, 4096 - 13, 4097, 100_000, 3, 65_536, 8191];

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeboat-segdirect-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const open = (directIo: boolean) =>
  SegmentLog.open({ dir, segmentBytes: 64 * 1024 * 1024, log: silentLog, directIo });

describe.each([
  { how: 'with direct I/O', directIo: true },
  { how: 'through the page cache', directIo: false },
])('segment appends $how', ({ directIo }) => {
  it('store every frame byte for byte, end the file at the last frame, and go on after a reopen', async (ctx) => {
    const written: Array<{ offset: number; payload: Buffer }> = [];
    let log = await open(directIo);
    const appendAll = async (sizes: number[]) => {
      for (const n of sizes) {
        const payload = randomBytes(n);
        const at = await log.append(FRAME_BATCH, payload);
        written.push({ offset: at.offset, payload });
        expect((await stat(log.path(1))).size).toBe(log.size(1));
      }
    };
    await appendAll(SIZES);
    if (directIo && !log.directIo) {
      await log.close();
      skipBecause(
        ctx,
        `the file system of ${tmpdir()} refuses O_DIRECT; the page-cache case covers it`,
      );
    }
    expect(log.directIo).toBe(directIo);
    await log.close();
    log = await open(directIo); // the partial last page is read back from the disk
    await appendAll([...SIZES].reverse());
    for (const { offset, payload } of written) {
      expect(await log.read(1, offset + FRAME_HEAD_BYTES, payload.length)).toEqual(payload);
    }
    let frames = 0;
    await log.recover({ segment: 1, offset: 0 }, () => {
      frames++;
      return undefined;
    });
    expect(frames).toBe(written.length);
    await log.close();
  });

  it('cut the zero padding a crash leaves after the last frame', async () => {
    const log = await open(directIo);
    await log.append(FRAME_BATCH, randomBytes(5000));
    const end = log.size(1);
    await log.close();
    // A direct write pads to whole pages and the file is cut back after it: a crash in between leaves zeros.
    await appendFile(join(dir, segmentFileName(1)), Buffer.alloc(8192 - (end % 4096)));
    const again = await open(directIo);
    await again.recover({ segment: 1, offset: 0 }, () => undefined);
    expect(again.size(1)).toBe(end);
    expect((await stat(again.path(1))).size).toBe(end);
    const next = await again.append(FRAME_BATCH, randomBytes(10));
    expect(next.offset).toBe(end);
    await again.close();
  });
});
