/** ECS image actions: CreateImage (from snapshots), DeleteImage, DescribeImages. */
import {
  type Action,
  checkRegion,
  iso,
  matchesTags,
  notFound,
  paged,
  tagList,
} from './ecs-emulator-query.js';
import { EcsApiError, type EmuImage, later, newId } from './ecs-emulator-state.js';

/**
 * CreateImage from snapshots. `SnapshotId` takes a system-disk snapshot only; a snapshot of a
 * data disk becomes a system disk through `DiskDeviceMapping.N.SnapshotId` with
 * `DiskDeviceMapping.N.DiskType=system`, and then the image needs `Platform` (ECS cannot tell the
 * OS of a data disk), with `Architecture` (x86_64 by default) and `BootMode`.
 */
export const createImage: Action = (s, q) => {
  checkRegion(s, q);
  const snapshotId = q.get('SnapshotId');
  const instanceId = q.get('InstanceId');
  const mappings: { snapshotId: string; type: 'system' | 'data'; size: number | undefined }[] = [];
  for (let n = 1; n <= 17; n++) {
    const id = q.get(`DiskDeviceMapping.${n}.SnapshotId`);
    const type = q.get(`DiskDeviceMapping.${n}.DiskType`);
    const sizeRaw = q.get(`DiskDeviceMapping.${n}.Size`);
    if (id === undefined && type === undefined && sizeRaw === undefined) continue;
    if (type !== undefined && type !== 'system' && type !== 'data') {
      throw new EcsApiError(
        400,
        'InvalidParameter',
        `The specified parameter "DiskDeviceMapping.${n}.DiskType" is not valid: ${type}.`,
      );
    }
    mappings.push({
      snapshotId: q.required(`DiskDeviceMapping.${n}.SnapshotId`),
      type: type === 'system' ? 'system' : 'data',
      size:
        sizeRaw === undefined
          ? undefined
          : q.int(`DiskDeviceMapping.${n}.Size`, { min: 1, max: 32_768 }),
    });
  }
  const sources = [snapshotId, instanceId, mappings.length > 0 ? 'mapping' : undefined];
  if (sources.filter((x) => x !== undefined).length !== 1) {
    throw new EcsApiError(
      400,
      'InvalidParameter.Conflict',
      'Give exactly one of SnapshotId, InstanceId and DiskDeviceMapping.',
    );
  }
  if (instanceId !== undefined) {
    throw new EcsApiError(400, 'InvalidParameter', 'This emulator makes images from snapshots.');
  }
  if (snapshotId !== undefined) mappings.push({ snapshotId, type: 'system', size: undefined });
  const systems = mappings.filter((m) => m.type === 'system');
  if (systems.length !== 1) {
    throw new EcsApiError(
      400,
      'InvalidSystemSnapshot.Missing',
      'An image needs exactly one system disk: set DiskDeviceMapping.N.DiskType=system on one mapping.',
    );
  }
  const disks = [...systems, ...mappings.filter((m) => m.type === 'data')].map((m, k) => {
    const snap = s.snapshots.get(m.snapshotId);
    if (!snap) throw notFound('SnapshotId', m.snapshotId);
    if (snap.status !== 'accomplished') {
      throw new EcsApiError(
        403,
        'InvalidSnapshotId.NotReady',
        'The specified snapshot has not completed yet.',
      );
    }
    if (k === 0 && snapshotId !== undefined && snap.diskType !== 'system') {
      throw new EcsApiError(
        403,
        'InvalidSnapshotId.NotSystemDiskSnapshot',
        `The specified snapshot ${snap.id} is a data disk snapshot: pass it as DiskDeviceMapping.1.SnapshotId with DiskDeviceMapping.1.DiskType=system and Platform.`,
      );
    }
    const size = m.size ?? snap.diskSize;
    if (size < snap.diskSize) {
      throw new EcsApiError(
        400,
        'InvalidDiskSize.TooSmall',
        'Specified disk size is less than the size of snapshot.',
      );
    }
    return { snapshotId: snap.id, type: m.type, size, fromData: snap.diskType === 'data' };
  });
  const system = disks[0] as (typeof disks)[number];
  if (system.size > 2048) {
    throw new EcsApiError(
      400,
      'InvalidSystemDiskSize.ValueNotSupported',
      `A system disk takes at most 2048 GiB, not ${system.size}.`,
    );
  }
  const platforms = [
    'CentOS',
    'Ubuntu',
    'Debian',
    'SUSE',
    'OpenSUSE',
    'RedHat',
    'Aliyun',
    'AlmaLinux',
    'Rocky Linux',
    'Anolis',
    'CentOS Stream',
    'Fedora',
    'Others Linux',
    'Customized Linux',
    'Windows Server 2019',
    'Windows Server 2022',
  ];
  const platform = q.get('Platform');
  if (platform === undefined && system.fromData) {
    throw new EcsApiError(
      400,
      'MissingParameter',
      'The input parameter "Platform" that is mandatory for processing this request is not supplied: the system disk comes from a data disk snapshot.',
    );
  }
  if (platform !== undefined && !platforms.includes(platform)) {
    throw new EcsApiError(
      400,
      'InvalidPlatform.ValueNotSupported',
      `The specified Platform ${platform} is invalid.`,
    );
  }
  const architecture = q.get('Architecture') ?? 'x86_64';
  if (!['i386', 'x86_64', 'arm64'].includes(architecture)) {
    throw new EcsApiError(
      400,
      'InvalidArchitecture.ValueNotSupported',
      `The specified Architecture ${architecture} is invalid.`,
    );
  }
  const bootMode = q.get('BootMode') ?? 'BIOS';
  if (!['BIOS', 'UEFI', 'UEFI-Preferred'].includes(bootMode)) {
    throw new EcsApiError(
      400,
      'InvalidBootMode.ValueNotSupported',
      `The specified BootMode ${bootMode} is invalid.`,
    );
  }
  const name = q.get('ImageName') ?? '';
  if (name !== '' && !/^[A-Za-z\u4e00-\u9fa5][\w.:-]{1,127}$/.test(name)) {
    throw new EcsApiError(
      400,
      'InvalidImageName.Malformed',
      `The image name "${name}" is not valid.`,
    );
  }
  const id = newId('m');
  const image: EmuImage = {
    id,
    name,
    snapshotId: system.snapshotId,
    size: system.size,
    disks: disks.map(({ snapshotId, type, size }) => ({ snapshotId, type, size })),
    platform: platform ?? 'Others Linux',
    architecture,
    bootMode,
    status: 'Creating',
    tags: q.newTags(),
    createdAt: Date.now(),
  };
  s.images.set(id, image);
  later(s, s.timings.imageMs, () => {
    image.status = 'Available';
  });
  return { ImageId: id };
};

export const deleteImage: Action = (s, q) => {
  checkRegion(s, q);
  const id = q.required('ImageId');
  if (!s.images.has(id)) throw notFound('ImageId', id);
  const inUse = [...s.instances.values()].some((i) => i.imageId === id);
  if (inUse && !q.bool('Force')) {
    throw new EcsApiError(403, 'IncorrectImageStatus', `The image ${id} is used by instances.`);
  }
  s.images.delete(id);
  return {};
};

export const describeImages: Action = (s, q) => {
  checkRegion(s, q);
  const ids = q.get('ImageId')?.split(',');
  // Like ECS, only Available images unless Status says otherwise.
  const statuses = (q.get('Status') ?? 'Available').split(',');
  const tags = q.tags();
  const all = [...s.images.values()].filter(
    (m) =>
      (ids === undefined || ids.includes(m.id)) &&
      statuses.includes(m.status) &&
      matchesTags(m.tags, tags),
  );
  const p = paged(all, q);
  return {
    RegionId: s.regionId,
    TotalCount: p.total,
    PageNumber: p.number,
    PageSize: p.size,
    Images: {
      Image: p.items.map((m) => ({
        ImageId: m.id,
        ImageName: m.name,
        ImageOwnerAlias: 'self',
        Status: m.status,
        Progress: m.status === 'Available' ? '100%' : '50%',
        Size: m.size,
        CreationTime: iso(m.createdAt),
        Platform: m.platform,
        Architecture: m.architecture,
        BootMode: m.bootMode,
        DiskDeviceMappings: {
          DiskDeviceMapping: m.disks.map((d) => ({
            SnapshotId: d.snapshotId,
            Size: String(d.size),
            Type: d.type,
          })),
        },
        Tags: tagList(m.tags),
      })),
    },
  };
};
