/** ECS image and instance actions. */
import { join } from 'node:path';
import {
  checkDiskSize,
  DEFAULT_SYSTEM_CATEGORY,
  familyCategories,
  performanceLevel,
} from './ecs-emulator-limits.js';
import {
  type Action,
  checkRegion,
  instance,
  iso,
  matchesTags,
  notFound,
  paged,
  tagList,
  wrongStatus,
} from './ecs-emulator-query.js';
import {
  createSparse,
  EcsApiError,
  type EcsState,
  type EmuImage,
  type EmuInstance,
  GiB,
  later,
  newId,
  nextIp,
  removeFile,
  sparseCopy,
} from './ecs-emulator-state.js';

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

export const runInstances: Action = async (s, q) => {
  checkRegion(s, q);
  const imageId = q.required('ImageId');
  const instanceType = q.required('InstanceType');
  const vSwitchId = q.required('VSwitchId');
  const securityGroupId = q.required('SecurityGroupId');
  const amount = q.int('Amount', { min: 1, max: 100, fallback: 1 });
  if (!/^ecs\.[a-z0-9-]+\.[a-z0-9]+$/.test(instanceType)) {
    throw new EcsApiError(
      400,
      'InvalidInstanceType.ValueNotSupported',
      `The instance type ${instanceType} is not supported.`,
    );
  }
  const image = s.images.get(imageId);
  if (!image) throw notFound('ImageId', imageId);
  if (image.status !== 'Available') {
    throw new EcsApiError(
      403,
      'InvalidImageId.NotReady',
      `The image ${imageId} is not available yet.`,
    );
  }
  const vsw = s.vSwitches.get(vSwitchId);
  if (!vsw) throw notFound('VSwitchId', vSwitchId);
  if (!s.securityGroups.has(securityGroupId)) throw notFound('SecurityGroupId', securityGroupId);
  const zoneId = q.get('ZoneId') ?? vsw.zoneId;
  if (zoneId !== vsw.zoneId) {
    throw new EcsApiError(
      400,
      'InvalidParameter.Mismatch',
      'The vSwitch is not in the requested zone.',
    );
  }
  const allowed = familyCategories(instanceType);
  const systemCategory = q.get('SystemDisk.Category') ?? DEFAULT_SYSTEM_CATEGORY;
  if (!allowed.includes(systemCategory)) {
    throw new EcsApiError(
      400,
      'InvalidSystemDiskCategory.ValueNotSupported',
      `The specified parameter "SystemDisk.Category" is not valid: ${instanceType} takes ${allowed.join(', ')}, not ${systemCategory}.`,
    );
  }
  const systemPl = performanceLevel(
    systemCategory,
    q.get('SystemDisk.PerformanceLevel'),
    'SystemDisk.PerformanceLevel',
  );
  const systemSize = q.int('SystemDisk.Size', {
    min: 1,
    max: 2048,
    fallback: Math.max(40, image.size),
  });
  checkDiskSize(
    systemSize,
    systemCategory,
    systemPl,
    'SystemDisk.Size',
    'InvalidSystemDiskSize.ValueNotSupported',
  );
  if (systemSize < image.size) {
    throw new EcsApiError(
      400,
      'InvalidSystemDiskSize.LessThanImageSize',
      'The system disk is smaller than the image.',
    );
  }
  const dataDisks: { snapshotId: string; size: number; category: string; pl: string }[] = [];
  // An image's own data disks come first, then the DataDisk.N of the request.
  for (const d of image.disks.slice(1)) {
    dataDisks.push({
      snapshotId: d.snapshotId,
      size: d.size,
      category: systemCategory,
      pl: systemPl,
    });
  }
  for (let n = 1; n <= 64; n++) {
    const snapshotId = q.get(`DataDisk.${n}.SnapshotId`);
    const sizeRaw = q.get(`DataDisk.${n}.Size`);
    if (snapshotId === undefined && sizeRaw === undefined) continue;
    const snap = snapshotId === undefined ? undefined : s.snapshots.get(snapshotId);
    if (snapshotId !== undefined && !snap) throw notFound('SnapshotId', snapshotId);
    if (snap && snap.status !== 'accomplished') {
      throw new EcsApiError(
        403,
        'InvalidSnapshotId.NotReady',
        `The snapshot ${snap.id} is not complete.`,
      );
    }
    const size = q.int(`DataDisk.${n}.Size`, {
      min: 1,
      max: 65_536,
      fallback: snap?.diskSize ?? 0,
    });
    if (snap && size < snap.diskSize) {
      throw new EcsApiError(
        400,
        'InvalidDataDiskSize.ValueNotSupported',
        `DataDisk.${n}.Size is smaller than its snapshot.`,
      );
    }
    const category = q.get(`DataDisk.${n}.Category`) ?? DEFAULT_SYSTEM_CATEGORY;
    if (!allowed.includes(category)) {
      throw new EcsApiError(
        400,
        'InvalidDataDiskCategory.ValueNotSupported',
        `The specified parameter "DataDisk.${n}.Category" is not valid: ${instanceType} takes ${allowed.join(', ')}, not ${category}.`,
      );
    }
    const pl = performanceLevel(
      category,
      q.get(`DataDisk.${n}.PerformanceLevel`),
      `DataDisk.${n}.PerformanceLevel`,
    );
    checkDiskSize(
      size,
      category,
      pl,
      `DataDisk.${n}.Size`,
      'InvalidDataDiskSize.ValueNotSupported',
    );
    dataDisks.push({ snapshotId: snapshotId ?? '', size, category, pl });
  }
  const ids: string[] = [];
  for (let a = 0; a < amount; a++) {
    const id = newId('i');
    const tags = q.newTags();
    const inst: EmuInstance = {
      id,
      name: q.get('InstanceName') ?? id,
      zoneId,
      instanceType,
      imageId,
      vSwitchId,
      securityGroupIds: [securityGroupId],
      privateIp: nextIp(vsw),
      status: 'Pending',
      tags,
      createdAt: Date.now(),
    };
    const disks = [
      { snapshotId: image.snapshotId, size: systemSize, category: systemCategory, pl: systemPl },
      ...dataDisks,
    ];
    for (const [k, spec] of disks.entries()) {
      const diskId = newId('d');
      const file = join(s.dataDir, `${diskId}.img`);
      const from = s.snapshots.get(spec.snapshotId);
      if (from) await sparseCopy(from.file, file, spec.size * GiB);
      else await createSparse(file, spec.size * GiB);
      s.disks.set(diskId, {
        id: diskId,
        name: '',
        zoneId,
        size: spec.size,
        category: spec.category,
        performanceLevel: spec.pl,
        type: k === 0 ? 'system' : 'data',
        status: 'In_use',
        instanceId: id,
        device: `/dev/xvd${'abcdefghijklmnopqrstuvwxyz'[k] ?? 'z'}`,
        deleteWithInstance: true,
        sourceSnapshotId: spec.snapshotId,
        file,
        tags: new Map(tags),
        createdAt: Date.now(),
      });
    }
    s.instances.set(id, inst);
    const stalled = s.stallInstances;
    later(s, s.timings.pendingMs, () => {
      if (inst.status === 'Pending') inst.status = 'Starting';
    });
    if (!stalled) {
      later(s, s.timings.pendingMs + s.timings.startingMs, () => {
        if (inst.status === 'Starting') inst.status = 'Running';
      });
    }
    ids.push(id);
  }
  return { InstanceIdSets: { InstanceIdSet: ids }, OrderId: '', TradePrice: 0 };
};

export const describeInstances: Action = (s, q) => {
  checkRegion(s, q);
  const ids = q.jsonList('InstanceIds');
  const status = q.get('Status');
  const vSwitchId = q.get('VSwitchId');
  const tags = q.tags();
  const all = [...s.instances.values()].filter(
    (i) =>
      (ids === undefined || ids.includes(i.id)) &&
      (status === undefined || i.status === status) &&
      (vSwitchId === undefined || i.vSwitchId === vSwitchId) &&
      matchesTags(i.tags, tags),
  );
  const p = paged(all, q);
  return {
    TotalCount: p.total,
    PageNumber: p.number,
    PageSize: p.size,
    Instances: {
      Instance: p.items.map((i) => ({
        InstanceId: i.id,
        InstanceName: i.name,
        RegionId: s.regionId,
        ZoneId: i.zoneId,
        InstanceType: i.instanceType,
        ImageId: i.imageId,
        Status: i.status,
        InstanceNetworkType: 'vpc',
        CreationTime: iso(i.createdAt),
        VpcAttributes: {
          VpcId: s.vSwitches.get(i.vSwitchId)?.vpcId ?? '',
          VSwitchId: i.vSwitchId,
          PrivateIpAddress: { IpAddress: [i.privateIp] },
        },
        SecurityGroupIds: { SecurityGroupId: i.securityGroupIds },
        Tags: tagList(i.tags),
      })),
    },
  };
};

/** Releases instances: Running ones only with Force; disks go with them or become Available. */
function release(s: EcsState, ids: string[], force: boolean): void {
  const found = ids.map((id) => instance(s, id));
  for (const i of found) {
    if (i.id === s.workerInstanceId) {
      throw new EcsApiError(
        403,
        'OperationDenied',
        `Deleting the worker ${i.id} would end this test.`,
      );
    }
    if (i.status !== 'Stopped' && !force)
      throw wrongStatus('Instance', `instance ${i.id}`, i.status);
  }
  for (const i of found) {
    i.status = 'Stopping';
    later(s, s.timings.deleteMs, () => {
      s.instances.delete(i.id);
      for (const d of [...s.disks.values()].filter((x) => x.instanceId === i.id)) {
        if (d.deleteWithInstance) {
          s.disks.delete(d.id);
          s.chores.push(removeFile(d.file));
        } else {
          d.status = 'Available';
          d.instanceId = '';
          d.device = '';
        }
      }
    });
  }
}

export const deleteInstances: Action = (s, q) => {
  checkRegion(s, q);
  const ids = q.repeated('InstanceId');
  if (ids.length === 0) q.required('InstanceId.1');
  release(s, ids, q.bool('Force'));
  return {};
};

/** DeleteInstance (one instance, no RegionId): Stopped ones, or any with Force. */
export const deleteInstance: Action = (s, q) => {
  release(s, [q.required('InstanceId')], q.bool('Force'));
  return {};
};

/** StopInstance: Running → Stopping → Stopped (the way a failback fences the ECS server). */
export const stopInstance: Action = (s, q) => {
  const i = instance(s, q.required('InstanceId'));
  if (i.id === s.workerInstanceId) {
    throw new EcsApiError(
      403,
      'OperationDenied',
      `Stopping the worker ${i.id} would end this test.`,
    );
  }
  if (i.status === 'Stopped') return {};
  if (i.status !== 'Running') throw wrongStatus('Instance', `instance ${i.id}`, i.status);
  i.status = 'Stopping';
  later(s, s.timings.stopMs, () => {
    if (i.status === 'Stopping') i.status = 'Stopped';
  });
  return {};
};

/** The ECS actions the alicloud provider uses. */
