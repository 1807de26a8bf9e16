import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isDrError } from '../../../../core/errors.js';
import { silentLog } from '../../../../core/log.js';
import {
  type AlicloudOptions,
  createAlicloudProvider,
} from '../../../../replicator/providers/alicloud-provider.js';
import type { MaterialisedVolume } from '../../../../replicator/providers/provider.js';
import { type EcsEmulator, startEcsEmulator } from '../../../fakes/ecs-emulator.js';
import { emulatedSite } from '../../../helpers/ecs-site.js';
import { missingFeature } from '../../../helpers/skip.js';
import {
  cpioNewc,
  gzip,
  makeSystemDisk,
  systemDiskToolsMissing,
} from '../../../helpers/system-disk.js';

const missing = await systemDiskToolsMissing();
const KERNEL = '6.1.0-18-amd64';

describe.skipIf(missingFeature(missing, 'alicloud bootability'))(
  'alicloud provider: the bootability check before a launch',
  () => {
    let dir: string;
    let emu: EcsEmulator;
    let keyId: string;
    let secret: string;

    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'lifeboat-ecs-boot-'));
      keyId = `LTAI5t${randomBytes(9).toString('hex')}`;
      secret = randomBytes(22).toString('base64url');
      emu = await startEcsEmulator({ accessKeyId: keyId, accessKeySecret: secret, dataDir: dir });
    });
    afterEach(async () => {
      await emu.close();
      await rm(dir, { recursive: true, force: true });
    });

    function options(over: Partial<AlicloudOptions> = {}): AlicloudOptions {
      return {
        ...emulatedSite(emu),
        accessKeyId: keyId,
        accessKeySecret: secret,
        attachPoll: 20,
        ...over,
      };
    }

    /** A system disk whose root is mounted as /dev/sda1 and whose initramfs lacks virtio. */
    async function badDisk(): Promise<MaterialisedVolume> {
      const path = join(dir, 'root.raw');
      await makeSystemDisk(path, {
        files: {
          '/etc/fstab': '/dev/sda1 / ext4 defaults 0 1\n',
          [`/boot/vmlinuz-${KERNEL}`]: 'k',
          [`/boot/initrd.img-${KERNEL}`]: gzip(cpioNewc({ init: '#!/bin/sh' })),
          '/etc/cloud/cloud.cfg': 'x',
        },
      });
      return { name: 'root', path, size: (await stat(path)).size };
    }

    const request = (opId: string, mode: 'drill' | 'failover', volume: MaterialisedVolume) => ({
      opId,
      app: 'shop',
      mode,
      volumes: [volume],
      signal: new AbortController().signal,
      log: silentLog,
    });

    it('stops a failover with a blocking problem before anything is made in ECS', async () => {
      const provider = createAlicloudProvider(options());
      const err = await provider.launch(request('op-blocked', 'failover', await badDisk())).then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(isDrError(err, 'boot_blocked')).toBe(true);
      expect(err?.message).toBe(
        "the recovered system disk of shop would not boot on ECS: /etc/fstab line 1 (/dev/sda1 on /) names a device that does not exist on ECS (disks are /dev/vd* or /dev/nvme*) (and 1 more blocking problem(s)). To resolve, mount it by UUID= or LABEL= (blkid shows them) on the source, so the next point carries the fix; a drill lists every problem. To fail over anyway, set bootCheck: warn in the app's provider block",
      );
      expect(emu.state.requests).toEqual([]);
    });

    it('lets a drill go on and lists every problem in its result; bootCheck warn lets a failover go', async () => {
      const volume = await badDisk();
      const provider = createAlicloudProvider(options());
      const drill = await provider.launch(request('op-drill', 'drill', volume));
      expect(drill.warnings).toEqual([
        expect.stringMatching(/^will not boot: \/etc\/fstab line 1 \(\/dev\/sda1 on \/\)/),
        expect.stringMatching(
          /^will not boot: the initramfs of kernel .* lacks the virtio block driver/,
        ),
        expect.stringMatching(/^the initramfs of kernel .* lacks the NVMe driver \(nvme\)/),
      ]);
      await provider.destroy('op-drill', silentLog);
      const forced = createAlicloudProvider(options({ bootCheck: 'warn' }));
      const failover = await forced.launch(request('op-forced', 'failover', volume));
      expect(failover.warnings).toHaveLength(3);
      await forced.destroy('op-forced', silentLog);
    });
  },
);
