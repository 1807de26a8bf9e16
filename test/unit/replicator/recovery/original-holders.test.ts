import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isDrError } from '../../../../core/errors.js';
import { copyBack } from '../../../../replicator/recovery/copy-back.js';
import { assertUnused, findHolders } from '../../../../replicator/recovery/original-holders.js';
import { loopProblem, Rig, tool } from '../../../helpers/loop-device.js';
import { missingFeature } from '../../../helpers/skip.js';
import { waitFor } from '../../../helpers/wait-for.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('who holds an original volume', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'holders-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('finds nobody on a free image, and nobody on a missing one', async () => {
    const img = join(dir, 'free.img');
    await writeFile(img, randomBytes(4096));
    expect(await findHolders(img)).toEqual([]);
    expect(await findHolders(join(dir, 'gone.img'))).toEqual([]);
    await expect(assertUnused('data', img, true)).resolves.toBeUndefined();
  });

  it('names a process that holds the image open, by pid and command, and refuses', async () => {
    const img = join(dir, 'held.img');
    await writeFile(img, randomBytes(4096));
    // A shell holding the image open read-write on fd 3, as an app holds its database.
    const holder = spawn('/bin/sh', ['-c', `exec 3<>"$1"; exec sleep 600`, 'sh', img], {
      stdio: 'ignore',
    });
    try {
      const found = await waitFor('the holder to open the image', async () => {
        const h = await findHolders(img);
        return h.length > 0 ? h : undefined;
      });
      expect(found).toEqual([
        expect.objectContaining({
          pid: holder.pid,
          command: 'sleep',
          what: `process ${holder.pid} (sleep) has it open`,
        }),
      ]);
      const err = await assertUnused('data', img, true).catch((e: unknown) => e);
      expect(isDrError(err, 'volume_in_use')).toBe(true);
      expect((err as Error).message).toContain(
        `the original volume data (${img}) is in use, so failback wrote nothing to it: process ${holder.pid} (sleep) has it open`,
      );
      expect((err as { remedy?: string }).remedy).toContain("run the app's fence command");
    } finally {
      holder.kill('SIGKILL');
    }
  });
});

const loops = await loopProblem();
describe.skipIf(missingFeature(loops, 'holders of loop devices and mounted ext4'))(
  'holders of loop devices and mounted ext4',
  () => {
    let rig: Rig;
    beforeEach(async () => {
      rig = new Rig(await mkdtemp(join(tmpdir(), 'holders-loop-')));
    });
    afterEach(async () => {
      await rig.cleanup();
      await rm(rig.dir, { recursive: true, force: true });
    });

    it('names the mount of an image behind a loop device, and of the device itself', async () => {
      const { image, device, mount } = await rig.loop('vol', 16, true);
      const viaImage = (await findHolders(image)).map((h) => h.what);
      expect(viaImage).toContain(`attached to loop device ${device}`);
      expect(viaImage).toContain(`mounted at ${mount}`);
      const viaDevice = (await findHolders(device)).map((h) => h.what);
      expect(viaDevice).toEqual([`mounted at ${mount}`]);
      await tool('umount', [mount as string]);
      expect(await findHolders(device)).toEqual([]);
    });

    it('names a mount kept by another mount namespace after the device is unmounted here', async () => {
      const { device, mount } = await rig.loop('ns', 16, true);
      // A private mount namespace made while it is mounted keeps its own copy of the mount.
      const other = spawn('unshare', ['--mount', '--propagation', 'private', 'sleep', '600'], {
        stdio: 'ignore',
      });
      try {
        await waitFor('the other namespace to hold the mount', async () =>
          (await findHolders(device)).some((h) => h.what.includes('another mount namespace')),
        );
        await tool('umount', [mount as string]);
        const held = await findHolders(device);
        // (Other processes on the machine may make namespaces with a copy of it too.)
        expect(held.map((h) => h.what)).toContain(
          `mounted at ${mount} in another mount namespace, that of process ${other.pid} (sleep)`,
        );
        expect(held.every((h) => h.what.includes('in another mount namespace'))).toBe(true);
      } finally {
        other.kill('SIGKILL');
        await new Promise((r) => other.once('exit', r));
      }
      await waitFor('the other namespace gone', async () =>
        (await findHolders(device)).every((h) => h.pid !== other.pid),
      );
    });

    it('will not write a mounted block device: the exclusive open is refused and nothing changes', async () => {
      const { device, mount } = await rig.loop('dst', 4, true);
      const before = sha(await readFile(device));
      const src = join(rig.dir, 'src.img');
      await writeFile(src, randomBytes(4 * 1024 * 1024));
      const err = await copyBack({
        volume: 'data',
        from: src,
        to: device,
        size: 4 * 1024 * 1024,
        blockSize: 65536,
        macKey: randomBytes(32),
        busyWaitMs: 500,
      }).catch((e: unknown) => e);
      expect(isDrError(err, 'volume_in_use')).toBe(true);
      expect((err as Error).message).toContain(`at ${device} is in use`);
      expect(sha(await readFile(device))).toBe(before);
      await tool('umount', [mount as string]);
      // e2fsck finds the file system as it was
      await tool('e2fsck', ['-fn', device]);
    });
  },
);
