import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BootProblem,
  checkBootability,
  fstabProblems,
  nvmeFamily,
} from '../../../../replicator/providers/check-bootability.js';
import { missingFeature } from '../../../helpers/skip.js';
import {
  cpioNewc,
  gzip,
  makeSystemDisk,
  systemDiskToolsMissing,
  zstd,
} from '../../../helpers/system-disk.js';

const KERNEL = '6.1.0-18-amd64';
const MODULES = `usr/lib/modules/${KERNEL}/kernel/drivers`;
const missing = await systemDiskToolsMissing();

/** A root file system that boots on ECS: fstab by UUID, drivers in the initramfs, cloud-init. */
async function goodFiles(initramfs: Buffer): Promise<Record<string, Buffer | string>> {
  return {
    '/etc/fstab':
      '# <fs> <mount> <type> <opts>\nUUID=1b2c / ext4 errors=remount-ro 0 1\nLABEL=data /data ext4 defaults 0 2\n',
    [`/boot/vmlinuz-${KERNEL}`]: 'kernel',
    [`/boot/initrd.img-${KERNEL}`]: initramfs,
    '/etc/cloud/cloud.cfg': 'datasource_list: [ AliYun ]\n',
    '/etc/netplan/50-cloud-init.yaml': 'network:\n  ethernets:\n    eth0:\n      dhcp4: true\n',
  };
}

const severities = (ps: BootProblem[]) => ps.map((p) => `${p.severity}: ${p.problem}`);

describe.skipIf(missingFeature(missing, 'checkBootability'))(
  'checkBootability on real ext4 images',
  () => {
    let dir: string;
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'lifeboat-boot-'));
    });
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('finds nothing wrong with a disk ready for ECS (zstd initramfs after an early microcode cpio)', async () => {
      const early = cpioNewc({ 'kernel/x86/microcode/GenuineIntel.bin': 'ucode' });
      const main = await zstd(
        cpioNewc({
          [`${MODULES}/block/virtio_blk.ko.xz`]: 'x',
          [`${MODULES}/nvme/host/nvme.ko.xz`]: 'x',
          init: '#!/bin/sh',
        }),
      );
      const image = join(dir, 'good.img');
      await makeSystemDisk(image, { files: await goodFiles(Buffer.concat([early, main])) });
      const report = await checkBootability(image, {
        instanceType: 'ecs.g8i.large',
        bootMode: 'BIOS',
      });
      expect(severities(report.problems)).toEqual([]);
      expect(report.checked).toEqual([
        'mbr partition table: 1=ext',
        `kernels: ${KERNEL}`,
        'cloud-init: installed',
      ]);
    });

    it('reports each problem with its remedy: device names in fstab, missing drivers, static network', async () => {
      const image = join(dir, 'bad.img');
      await makeSystemDisk(image, {
        files: {
          '/etc/fstab':
            '/dev/sda1 / ext4 defaults 0 1\n/dev/sdb1 /data ext4 defaults,nofail 0 2\n/dev/vdc1 /logs ext4 defaults 0 2\n',
          [`/boot/vmlinuz-${KERNEL}`]: 'kernel',
          [`/boot/initrd.img-${KERNEL}`]: gzip(cpioNewc({ [`${MODULES}/ata/ahci.ko`]: 'x' })),
          '/etc/cloud/cloud.cfg': 'x',
          '/etc/cloud/cloud-init.disabled': '',
          '/etc/netplan/01-static.yaml':
            'network:\n  ethernets:\n    eth0:\n      addresses: [192.168.10.5/24]\n',
          '/etc/udev/rules.d/70-persistent-net.rules': 'SUBSYSTEM=="net"',
        },
      });
      const { problems } = await checkBootability(image, { instanceType: 'ecs.g8i.large' });
      expect(severities(problems)).toEqual([
        'blocking: /etc/fstab line 1 (/dev/sda1 on /) names a device that does not exist on ECS (disks are /dev/vd* or /dev/nvme*)',
        'warning: /etc/fstab line 2 (/dev/sdb1 on /data) names a device that does not exist on ECS (disks are /dev/vd* or /dev/nvme*)',
        'warning: /etc/fstab line 3 (/dev/vdc1 on /logs) names a device by its order of attachment, which can change on ECS',
        `blocking: the initramfs of kernel ${KERNEL} lacks the virtio block driver (virtio_blk) that ecs.g8i.large needs to find its disks`,
        `blocking: the initramfs of kernel ${KERNEL} lacks the NVMe driver (nvme) that ecs.g8i.large needs to find its disks`,
        'warning: cloud-init is disabled (/etc/cloud/cloud-init.disabled): the ECS instance keeps the source’s hostname, keys and network',
        'warning: /etc/netplan/01-static.yaml sets the static address 192.168.10.5/24: on ECS the instance gets another one',
        'warning: /etc/udev/rules.d/70-persistent-net.rules pins interface names to the source MAC addresses',
      ]);
      for (const p of problems) expect(p.remedy.length).toBeGreaterThan(10);
      expect(problems[0]?.remedy).toContain('UUID=');
      expect(problems[3]?.remedy).toContain('dracut --add-drivers virtio_blk');
    });

    it('takes drivers built into the kernel; on a 7th-generation family a missing NVMe driver is a warning', async () => {
      const image = join(dir, 'builtin.img');
      await makeSystemDisk(image, {
        files: {
          '/etc/fstab': 'UUID=1 / ext4 defaults 0 1\n',
          [`/boot/vmlinuz-${KERNEL}`]: 'kernel',
          [`/boot/config-${KERNEL}`]: 'CONFIG_VIRTIO_BLK=y\nCONFIG_BLK_DEV_NVME=m\n',
          '/etc/cloud/cloud.cfg': 'x',
        },
      });
      const { problems } = await checkBootability(image, { instanceType: 'ecs.g7.large' });
      expect(severities(problems)).toEqual([
        `warning: kernel ${KERNEL} has no initramfs and NVMe (nvme) is not built in: it cannot find its root disk on ecs.g7.large`,
      ]);
    });

    it('blocks a UEFI-only disk registered as BIOS, and a disk without a root file system', async () => {
      const uefi = join(dir, 'uefi.img');
      await makeSystemDisk(uefi, {
        table: 'gpt-efi',
        files: {
          '/etc/fstab': 'UUID=1 / ext4 defaults 0 1\n',
          [`/boot/vmlinuz-${KERNEL}`]: 'k',
          [`/boot/config-${KERNEL}`]: 'CONFIG_VIRTIO_BLK=y\n',
          '/etc/cloud/cloud.cfg': 'x',
        },
      });
      const r = await checkBootability(uefi, { instanceType: 'ecs.c6.large', bootMode: 'BIOS' });
      expect(r.checked[0]).toBe('gpt partition table: 1=unknown, 2=ext');
      expect(severities(r.problems)).toEqual([
        'blocking: the disk boots by UEFI only (an EFI system partition, no BIOS boot partition) but the image is set to BIOS',
      ]);
      expect(r.problems[0]?.remedy).toContain('bootMode: UEFI');
      expect(
        (await checkBootability(uefi, { instanceType: 'ecs.c6.large', bootMode: 'UEFI' })).problems,
      ).toEqual([]);

      const blank = join(dir, 'blank.img');
      await writeFile(blank, Buffer.alloc(4 * 1024 * 1024));
      const none = await checkBootability(blank, { instanceType: 'ecs.c6.large' });
      expect(severities(none.problems)).toEqual([
        'blocking: no root file system found on the system disk (no ext file system with /etc/fstab)',
      ]);
    });

    it('says what it could not read: a file system other than ext, debugfs missing', async () => {
      const xfs = join(dir, 'xfs.img');
      const head = Buffer.alloc(1024 * 1024);
      head.write('XFSB', 0, 'latin1');
      await writeFile(xfs, head);
      const r = await checkBootability(xfs, { instanceType: 'ecs.c6.large' });
      expect(severities(r.problems)).toEqual([
        'warning: partition (whole disk) holds xfs, which this check cannot read: fstab, drivers and network on it were not checked',
      ]);
      const noTool = await checkBootability(xfs, {
        instanceType: 'ecs.c6.large',
        debugfs: '/nonexistent/debugfs',
      });
      expect(noTool.problems[0]).toMatchObject({
        severity: 'warning',
        remedy: 'install e2fsprogs on the worker (apt-get install e2fsprogs)',
      });
    });
  },
);

describe('bootability rules', () => {
  it('knows which families attach disks over NVMe', () => {
    expect(nvmeFamily('ecs.g8i.xlarge')).toEqual({ required: true, maybe: true });
    expect(nvmeFamily('ecs.g7se.large')).toEqual({ required: true, maybe: true });
    expect(nvmeFamily('ecs.g7.large')).toEqual({ required: false, maybe: true });
    expect(nvmeFamily('ecs.c6.large')).toEqual({ required: false, maybe: false });
  });

  it('leaves swap by device name and stable names alone', () => {
    expect(fstabProblems('/dev/sdb2 none swap sw 0 0\n')[0]?.severity).toBe('warning');
    expect(
      fstabProblems('/dev/disk/by-uuid/1 / ext4 d 0 1\n/dev/mapper/vg-root /srv ext4 d 0 2\n'),
    ).toEqual([]);
  });
});
