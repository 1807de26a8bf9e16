/** ECS instance actions: RunInstances, DescribeInstances, StopInstance, StartInstance, DeleteInstance(s). */
import { symlink } from 'node:fs/promises';
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
  byIdName,
  createSparse,
  EcsApiError,
  type EcsState,
  type EmuInstance,
  GiB,
  later,
  newId,
  nextIp,
  removeFile,
  sparseCopy,
} from './ecs-emulator-state.js';

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
      // The instance's guest sees its disks by serial too (one by-id directory serves every
      // emulated guest: serials are unique), so a command run on it finds them.
      await symlink(file, join(s.byIdDir, byIdName(s, diskId)));
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
          s.chores.push(removeFile(d.file), removeFile(join(s.byIdDir, byIdName(s, d.id))));
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

/** StartInstance: Stopped → Starting → Running (a failback that fails after the fence starts it again). */
export const startInstance: Action = (s, q) => {
  const i = instance(s, q.required('InstanceId'));
  if (i.status === 'Running') return {};
  if (i.status !== 'Stopped') throw wrongStatus('Instance', `instance ${i.id}`, i.status);
  i.status = 'Starting';
  later(s, s.timings.startingMs, () => {
    if (i.status === 'Starting') i.status = 'Running';
  });
  return {};
};

/** The ECS actions the alicloud provider uses. */
