import { lstat, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type Body,
  emu,
  popCore,
  REQUEST_ID,
  refusal,
  type Style,
  sdk,
  secret,
  useEcsContractEmulator,
} from '../helpers/ecs-clients.js';
import { waitFor } from '../helpers/wait-for.js';

useEcsContractEmulator();

// RPC requests built by hand and Cloud Assistant are in ecs-contract-rpc.test.ts (the same rig).

const styles: [string, () => Style][] = [
  ['pop-core RPC HMAC-SHA1, GET', () => popCore('GET')],
  ['pop-core RPC HMAC-SHA1, POST form body', () => popCore('POST')],
  ['ecs20140526 ACS3-HMAC-SHA256', () => sdk('ACS3-HMAC-SHA256')],
  ['ecs20140526 ACS3-HMAC-SM3', () => sdk('ACS3-HMAC-SM3')],
  ['ecs20140526 RPC (v2)', () => sdk('v2')],
];

describe.each(styles)('ECS emulator with %s', (_name, make) => {
  it('accepts a right call and refuses a wrong one as ECS does, in every request form', async () => {
    const c = make();
    const region = emu.state.regionId;
    const zone = emu.state.zoneId;

    const regions = (await c.call('DescribeRegions', {})) as {
      RequestId: string;
      Regions: { Region: { RegionId: string }[] };
    };
    expect(regions.RequestId).toMatch(REQUEST_ID);
    expect(regions.Regions.Region.map((r) => r.RegionId)).toContain(region);

    // Size limits per category and performance level.
    const tooSmall = await refusal(
      c.call('CreateDisk', { RegionId: region, ZoneId: zone, DiskCategory: 'cloud_essd', Size: 5 }),
    );
    expect(tooSmall).toMatchObject({ code: 'InvalidDiskSize.ValueNotSupported' });
    expect(tooSmall.requestId).toMatch(REQUEST_ID);
    expect(
      await refusal(
        c.call('CreateDisk', {
          RegionId: region,
          ZoneId: zone,
          DiskCategory: 'cloud_essd',
          PerformanceLevel: 'PL2',
          Size: 100,
        }),
      ),
    ).toMatchObject({ code: 'InvalidDiskSize.ValueNotSupported' });
    expect(
      await refusal(
        c.call('CreateDisk', { RegionId: region, ZoneId: zone, DiskCategory: 'cloud_essd' }),
      ),
    ).toMatchObject({ code: 'MissingParameter' });
    expect(await refusal(c.call('CreateDisk', { ZoneId: zone, Size: 20 }))).toMatchObject({
      code: 'MissingParameter',
    });
    const pl0 = (await c.call('CreateDisk', {
      RegionId: region,
      ZoneId: zone,
      DiskCategory: 'cloud_essd',
      PerformanceLevel: 'PL0',
      Size: 1,
    })) as { DiskId: string };
    expect(emu.state.disks.get(pl0.DiskId)).toMatchObject({ size: 1, performanceLevel: 'PL0' });

    // A new disk is Creating; AttachDisk takes Available ones only.
    const { DiskId } = (await c.call('CreateDisk', {
      RegionId: region,
      ZoneId: zone,
      DiskCategory: 'cloud_essd',
      Size: 20,
      'Tag.1.Key': 'contract',
      'Tag.1.Value': 'yes',
    })) as { DiskId: string };
    const disks = async () =>
      (
        (await c.call('DescribeDisks', {
          RegionId: region,
          DiskIds: JSON.stringify([DiskId]),
        })) as { Disks: { Disk: Body[] } }
      ).Disks.Disk;
    expect((await disks())[0]).toMatchObject({ Status: 'Creating', PerformanceLevel: 'PL1' });
    const early = await refusal(
      c.call('AttachDisk', { DiskId, InstanceId: emu.state.workerInstanceId }),
    );
    expect(early).toMatchObject({ code: 'IncorrectDiskStatus' });
    expect(early.requestId).toMatch(REQUEST_ID);
    await waitFor(
      'the disk to become Available',
      async () => (await disks())[0]?.Status === 'Available',
    );
    await c.call('AttachDisk', { DiskId, InstanceId: emu.state.workerInstanceId });
    const attached = await waitFor('the disk to become In_use', async () => {
      const d = (await disks())[0];
      return d?.Status === 'In_use' ? d : undefined;
    });
    // The API names the device /dev/xvd?; the guest finds the disk by serial under by-id.
    expect(attached.Device).toMatch(/^\/dev\/xvd[b-z]$/);
    const serial = DiskId.replace(/^d-/, '').slice(0, 20);
    expect(attached.SerialNumber).toBe(serial);
    const link = join(emu.byIdDir, `virtio-${serial}`);
    expect((await lstat(link)).isSymbolicLink()).toBe(true);
    expect(await readlink(link)).toBe(emu.state.disks.get(DiskId)?.file);

    await c.call('DetachDisk', { DiskId, InstanceId: emu.state.workerInstanceId });
    await waitFor(
      'the disk to become Available',
      async () => (await disks())[0]?.Status === 'Available',
    );

    // CreateImage: SnapshotId takes system-disk snapshots; a data-disk snapshot needs
    // DiskDeviceMapping with DiskType=system and a Platform.
    const { SnapshotId } = (await c.call('CreateSnapshot', { DiskId })) as { SnapshotId: string };
    // Status changes show through the API (the emulator applies them as calls come).
    await waitFor('the snapshot', async () => {
      const r = (await c.call('DescribeSnapshots', {
        RegionId: region,
        SnapshotIds: JSON.stringify([SnapshotId]),
      })) as { Snapshots: { Snapshot: { Status: string }[] } };
      return r.Snapshots.Snapshot[0]?.Status === 'accomplished';
    });
    expect(await refusal(c.call('CreateImage', { RegionId: region, SnapshotId }))).toMatchObject({
      code: 'InvalidSnapshotId.NotSystemDiskSnapshot',
    });
    const mapping = {
      RegionId: region,
      'DiskDeviceMapping.1.SnapshotId': SnapshotId,
      'DiskDeviceMapping.1.DiskType': 'system',
    };
    expect(await refusal(c.call('CreateImage', mapping))).toMatchObject({
      code: 'MissingParameter',
    });
    expect(
      await refusal(c.call('CreateImage', { ...mapping, Platform: 'Ubuntu', BootMode: 'Legacy' })),
    ).toMatchObject({ code: 'InvalidBootMode.ValueNotSupported' });
    const { ImageId } = (await c.call('CreateImage', {
      ...mapping,
      Platform: 'Ubuntu',
      Architecture: 'x86_64',
      BootMode: 'BIOS',
    })) as { ImageId: string };
    await waitFor('the image', async () => {
      // DescribeImages lists Available images only, unless Status says otherwise.
      const r = (await c.call('DescribeImages', { RegionId: region, ImageId })) as {
        Images: { Image: unknown[] };
      };
      return r.Images.Image.length === 1;
    });

    // RunInstances: a 7th-generation family refuses the default system disk category.
    const n = emu.state.network;
    const run = {
      RegionId: region,
      ImageId,
      InstanceType: 'ecs.g7.large',
      VSwitchId: n.drillVSwitchId,
      SecurityGroupId: n.drillSecurityGroupId,
    };
    expect(await refusal(c.call('RunInstances', run))).toMatchObject({
      code: 'InvalidSystemDiskCategory.ValueNotSupported',
    });
    expect(
      await refusal(
        c.call('RunInstances', {
          ...run,
          'SystemDisk.Category': 'cloud_essd',
          'SystemDisk.Size': 10,
        }),
      ),
    ).toMatchObject({ code: 'InvalidSystemDiskSize.ValueNotSupported' });
    const started = (await c.call('RunInstances', {
      ...run,
      'SystemDisk.Category': 'cloud_essd',
    })) as {
      InstanceIdSets: { InstanceIdSet: string[] };
    };
    const id = started.InstanceIdSets.InstanceIdSet[0] ?? '';
    // Pending → Starting → Running, each seen through DescribeInstances.
    const seen = new Set<string>();
    await waitFor('the instance to reach Running', async () => {
      const r = (await c.call('DescribeInstances', {
        RegionId: region,
        InstanceIds: JSON.stringify([id]),
      })) as { Instances: { Instance: { Status: string }[] } };
      const status = r.Instances.Instance[0]?.Status ?? '';
      seen.add(status);
      return status === 'Running';
    });
    expect(
      [...seen].filter((s) => s !== 'Running').every((s) => ['Pending', 'Starting'].includes(s)),
    ).toBe(true);
    // DeleteInstance refuses a Running instance without Force; StopInstance, then it goes.
    expect(await refusal(c.call('DeleteInstance', { InstanceId: id }))).toMatchObject({
      code: 'IncorrectInstanceStatus',
    });
    await c.call('StopInstance', { InstanceId: id });
    await waitFor('the instance to stop', async () => {
      const r = (await c.call('DescribeInstances', {
        RegionId: region,
        InstanceIds: JSON.stringify([id]),
      })) as { Instances: { Instance: { Status: string }[] } };
      return r.Instances.Instance[0]?.Status === 'Stopped';
    });
    await c.call('DeleteInstance', { InstanceId: id });
  });

  it('refuses a wrong secret and an unknown action', async () => {
    const style = make();
    const wrong = style.name.startsWith('pop-core')
      ? popCore(style.name.endsWith('POST') ? 'POST' : 'GET', `${secret}x`)
      : sdk(style.name.split(' ')[1] ?? '', `${secret}x`);
    const r = await refusal(wrong.call('DescribeRegions', {}));
    expect(r.code).toBe('SignatureDoesNotMatch');
    expect(r.requestId).toMatch(REQUEST_ID);
    expect(await refusal(style.call('LaunchRocket', {}))).toMatchObject({
      code: 'InvalidAction.NotFound',
    });
  });
});
